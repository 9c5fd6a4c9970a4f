// One server-sent-events stream per namespace for all the UI's tabs: a browser opens at most 6 HTTP/1.1
// connections per host, so a stream per tab would leave the 7th tab unable to load at all.
"use strict";
const streams = new Map();   // namespace -> {source, ports: Set, last, status}

function send(stream, msg) { for (const port of stream.ports) port.postMessage(msg); }

function leave(port) {
  for (const [ns, stream] of streams) {
    stream.ports.delete(port);
    if (!stream.ports.size) { stream.source.close(); streams.delete(ns); }
  }
}

function join(port, ns) {
  leave(port);
  let stream = streams.get(ns);
  if (!stream) {
    stream = {ports: new Set(), last: null, status: "connecting…"};
    stream.source = new EventSource("/ui/api/stream?namespace=" + encodeURIComponent(ns));
    stream.source.onmessage = (msg) => { stream.last = msg.data; send(stream, {type: "data", data: msg.data}); };
    stream.source.addEventListener("traffic", (msg) => send(stream, {type: "traffic", data: msg.data}));
    stream.source.onopen = () => { stream.status = "live"; send(stream, {type: "status", text: "live"}); };
    stream.source.onerror = () => { stream.status = "reconnecting…"; send(stream, {type: "status", text: "reconnecting…"}); };
    streams.set(ns, stream);
  }
  stream.ports.add(port);
  port.postMessage({type: "status", text: stream.status});
  if (stream.last) port.postMessage({type: "data", data: stream.last});
}

onconnect = (event) => {
  const port = event.ports[0];
  port.onmessage = (msg) => {
    if (msg.data.bye) leave(port);
    else join(port, msg.data.namespace);
  };
  port.start();
};
