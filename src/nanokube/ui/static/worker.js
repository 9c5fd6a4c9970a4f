// One server-sent-events stream per namespace for all the UI's tabs: a browser opens at most 6 HTTP/1.1
// connections per host, so a stream per tab would leave the 7th tab unable to load at all. The worker parses
// each message once and keeps the namespace's map (snapshot + deltas) for tabs that join later.
"use strict";
const streams = new Map();   // namespace -> {source, ports: Set, view: {namespace, namespaces, services: Map}, status}

function send(stream, msg) { for (const port of stream.ports) port.postMessage(msg); }

function snapshotOf(view) {
  const names = [...view.services.keys()].sort();
  return {namespace: view.namespace, namespaces: view.namespaces, services: names.map((n) => view.services.get(n))};
}

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
    stream = {ports: new Set(), view: null, status: "connecting…"};
    stream.source = new EventSource("/ui/api/stream?namespace=" + encodeURIComponent(ns));
    stream.source.onmessage = (msg) => {
      const view = JSON.parse(msg.data);
      stream.view = {namespace: view.namespace, namespaces: view.namespaces,
                     services: new Map(view.services.map((s) => [s.name, s]))};
      send(stream, {type: "snapshot", data: view});
    };
    stream.source.addEventListener("delta", (msg) => {
      const delta = JSON.parse(msg.data);
      if (!stream.view) return;
      if (delta.namespaces) stream.view.namespaces = delta.namespaces;
      for (const [name, svc] of Object.entries(delta.services)) {
        if (svc) stream.view.services.set(name, svc); else stream.view.services.delete(name);
      }
      send(stream, {type: "delta", data: delta});
    });
    stream.source.addEventListener("traffic", (msg) => send(stream, {type: "traffic", data: JSON.parse(msg.data)}));
    stream.source.onopen = () => { stream.status = "live"; send(stream, {type: "status", text: "live"}); };
    stream.source.onerror = () => { stream.status = "reconnecting…"; send(stream, {type: "status", text: "reconnecting…"}); };
    streams.set(ns, stream);
  }
  stream.ports.add(port);
  port.postMessage({type: "status", text: stream.status});
  if (stream.view) port.postMessage({type: "snapshot", data: snapshotOf(stream.view)});
}

onconnect = (event) => {
  const port = event.ports[0];
  port.onmessage = (msg) => {
    if (msg.data.bye) leave(port);
    else join(port, msg.data.namespace);
  };
  port.start();
};
