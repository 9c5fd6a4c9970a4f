// nanokube UI: the Service map of one namespace, kept live from server-sent events: a snapshot on connect, then
// per-Service deltas, each redrawing only that Service's section. No dependencies.
"use strict";
const WINDOW_MS = 30000;          // traffic share: connections of the last 30 s
const ROW = 44;                   // height of an endpoint row, px (CSS .endpoint height + margin)
const samples = [];               // [{at, counts: {"ns/svc": {ip: connections}}}]
let current = null;               // {namespace, namespaces}
const sections = new Map();       // Service name -> its <section>, in the map
let order = [];                   // the Services' names, sorted as drawn
let source = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function namespaceFromUrl() { return new URLSearchParams(location.search).get("namespace") || "default"; }

let worker = null;
function onSnapshot(view) { current = {namespace: view.namespace, namespaces: view.namespaces}; draw(view.services); }
function onDelta(delta) {
  if (!current) return;
  if (delta.namespaces) { current.namespaces = delta.namespaces; drawNamespaces(); }
  for (const [name, svc] of Object.entries(delta.services)) patchService(name, svc);
  drawEmpty();
}
function onTraffic(traffic) { recordTraffic(traffic); drawShares(); }

// Tabs share one stream per namespace through a SharedWorker (worker.js) where the browser has them.
function connect() {
  const ns = namespaceFromUrl();
  if (window.SharedWorker) {
    if (!worker) {
      worker = new SharedWorker("/ui/static/worker.js");
      worker.port.onmessage = (m) => {
        if (m.data.type === "snapshot") onSnapshot(m.data.data);
        else if (m.data.type === "delta") onDelta(m.data.data);
        else if (m.data.type === "traffic") onTraffic(m.data.data);
        else setStatus(m.data.text);
      };
      worker.port.start();
      addEventListener("pagehide", () => worker.port.postMessage({bye: true}));
      addEventListener("pageshow", (e) => { if (e.persisted) worker.port.postMessage({namespace: namespaceFromUrl()}); });
    }
    worker.port.postMessage({namespace: ns});
    return;
  }
  if (source) source.close();
  source = new EventSource("/ui/api/stream?namespace=" + encodeURIComponent(ns));
  source.onmessage = (msg) => onSnapshot(JSON.parse(msg.data));
  source.addEventListener("delta", (msg) => onDelta(JSON.parse(msg.data)));
  source.addEventListener("traffic", (msg) => onTraffic(JSON.parse(msg.data)));
  source.onopen = () => setStatus("live");
  source.onerror = () => setStatus("reconnecting…");
}

function setStatus(text) { document.getElementById("status").textContent = text; }

function recordTraffic(traffic) {
  if (!traffic || !traffic.services) return;
  const counts = {};
  for (const [svc, eps] of Object.entries(traffic.services)) {
    const byIp = counts[svc] = {};
    for (const [endpoint, c] of Object.entries(eps)) {
      const ip = endpoint.slice(0, endpoint.lastIndexOf(":")).replace(/^\[|\]$/g, "");
      byIp[ip] = (byIp[ip] || 0) + (c.connections || 0);
    }
  }
  const at = Date.now();
  samples.push({at, counts});
  while (samples.length > 2 && samples[1].at < at - WINDOW_MS) samples.shift();
}

// connections per endpoint IP of one Service over the window, and their total
function shares(key) {
  if (samples.length < 2) return null;
  const first = samples[0].counts[key] || {}, last = samples[samples.length - 1].counts[key] || {};
  const out = {}; let total = 0;
  for (const [ip, n] of Object.entries(last)) { out[ip] = Math.max(0, n - (first[ip] || 0)); total += out[ip]; }
  return {per: out, total};
}

function sharePct(traffic, address) {
  if (!traffic) return null;
  return traffic.total ? Math.round(100 * (traffic.per[address] || 0) / traffic.total) : 0;
}

// a counters tick: only the share cells and line widths of the Services the proxy counts for change
function drawShares() {
  if (!current || !samples.length) return;
  const prefix = current.namespace + "/";
  for (const key of Object.keys(samples[samples.length - 1].counts)) {
    const section = key.startsWith(prefix) && sections.get(key.slice(prefix.length));
    if (!section) continue;
    const traffic = shares(key);
    const lines = section.querySelectorAll("svg.links line");
    section.querySelectorAll(".endpoint").forEach((li, i) => {
      const pct = sharePct(traffic, li.dataset.address);
      if (pct === null || li.dataset.share === String(pct)) return;
      li.dataset.share = pct;
      const cell = li.querySelector(".share");
      cell.replaceChildren(el("i", {style: `width:${pct}px`}), pct + "%");
      if (lines[i]) lines[i].setAttribute("stroke-width", 1 + pct / 10);
    });
  }
}

function addresses(svc) {
  const rows = [];
  if (svc.clusterIPs.length) rows.push(["ClusterIP", svc.clusterIPs.join(", ")]);
  if (svc.headless) rows.push(["ClusterIP", "None (headless)"]);
  const ports = svc.ports.map((p) => `${p.name ? p.name + " " : ""}${p.port}/${p.protocol}→${p.targetPort}`
    + (p.nodePort ? ` (node ${p.nodePort})` : ""));
  if (ports.length) rows.push(["Ports", ports.join(", ")]);
  if (svc.loadBalancer.length) rows.push(["LB IP", svc.loadBalancer.join(", ")]);
  if (svc.externalIPs.length) rows.push(["External IPs", svc.externalIPs.join(", ")]);
  if (svc.externalName) rows.push(["External name", svc.externalName]);
  const sel = Object.entries(svc.selector).map(([k, v]) => `${k}=${v}`).join(", ");
  rows.push(["Selector", sel || "(none)"]);
  rows.push(["DNS", svc.dns[0] || ""]);
  return el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {"data-field": k}, v)]));
}

function verdict(v) {
  return el("div", {class: "verdict " + (v.ok ? "ok" : "problem"), "data-code": v.code},
    v.ok ? "OK" : "Problem: ", v.ok ? null : v.message, v.fix ? el("span", {class: "fix"}, v.fix) : null);
}

function drawService(svc, ns) {
  const key = ns + "/" + svc.name;
  const traffic = shares(key);
  const card = el("div", {class: "svc-card"},
    el("h2", {onclick: () => details("Service", ns, svc.name)}, svc.name,
      el("span", {class: "type", "data-field": "type"}, svc.type)),
    addresses(svc), verdict(svc.verdict));
  const list = el("ul", {class: "endpoints"});
  const svg = svgEl("svg", {class: "links", height: Math.max(ROW, svc.endpoints.length * ROW)});
  svc.endpoints.forEach((ep, i) => {
    const pod = ep.podInfo;
    const pct = sharePct(traffic, ep.address);
    svg.append(svgEl("line", {x1: 0, y1: ROW / 2, x2: 60, y2: i * ROW + ROW / 2 - 2,
      "stroke-width": pct === null ? 2 : 1 + pct / 10, class: ep.ready ? "ready" : "notready"}));
    list.append(el("li", {class: "endpoint " + (ep.ready ? "ready" : "notready"), "data-address": ep.address,
        "data-pod": ep.pod, "data-share": pct === null ? null : pct},
      el("span", {class: "addr", title: ep.ready ? "ready" : (ep.terminating ? "terminating" : "not ready")},
        ep.address + (ep.ports.length ? ":" + ep.ports.join(",") : "")),
      el("span", {class: "share", title: "share of new connections, last 30 s"},
        el("i", {style: `width:${pct || 0}px`}), pct === null ? "–" : pct + "%"),
      ep.dns ? el("span", {class: "dns", title: "per-pod DNS name"}, ep.dns) : null,
      el("span", {class: "arrow"}, "→"),
      pod ? el("span", {class: "pod " + (pod.ready ? "ready" : "notready"), onclick: () => details("Pod", ns, pod.name)},
        `${pod.name} · ${pod.phase}${pod.ready ? " · ready" : " · not ready"} · ${pod.restarts} restarts`)
        : el("span", {class: "pod"}, ep.pod || "(no pod)"),
      el("span", {class: "arrow"}, "→"),
      el("span", {class: "node", onclick: () => ep.node && details("Node", "", ep.node)}, ep.node || (pod && pod.node) || "?")));
  });
  let right = list;
  if (svc.type === "ExternalName") right = el("div", {class: "external"}, "→ CNAME " + svc.externalName);
  else if (!svc.endpoints.length) right = el("div", {class: "empty"}, Object.keys(svc.selector).length
    ? "no endpoints" : "no selector: endpoints are managed by hand");
  return el("section", {class: "service", "data-service": svc.name, "data-type": svc.type}, card, svg, right);
}

function drawNamespaces() {
  const select = document.getElementById("namespace");
  const names = current.namespaces;
  if (select.options.length !== names.length || [...select.options].some((o, i) => o.value !== names[i])) {
    select.replaceChildren(...names.map((n) => el("option", {value: n}, n)));
  }
  select.value = current.namespace;
}

function drawEmpty() {
  const map = document.getElementById("map");
  const note = document.getElementById("no-services");
  if (!order.length && !note) map.append(el("p", {id: "no-services"}, "No Services in this namespace."));
  else if (order.length && note) note.remove();
}

// the whole map, from a snapshot (on connect)
function draw(services) {
  drawNamespaces();
  sections.clear();
  const drawn = services.map((s) => { const section = drawService(s, current.namespace); sections.set(s.name, section); return section; });
  order = services.map((s) => s.name);
  document.getElementById("map").replaceChildren(...drawn);
  drawEmpty();
}

// one Service from a delta: its section replaced, inserted in name order, or removed (svc null)
function patchService(name, svc) {
  const old = sections.get(name);
  if (!svc) {
    if (old) { old.remove(); sections.delete(name); order.splice(sortedIndex(name), 1); }
    return;
  }
  const section = drawService(svc, current.namespace);
  sections.set(name, section);
  if (old) { old.replaceWith(section); return; }
  const at = sortedIndex(name);
  const next = at < order.length ? sections.get(order[at]) : null;
  order.splice(at, 0, name);
  document.getElementById("map").insertBefore(section, next || document.getElementById("no-services"));
}

function sortedIndex(name) {  // where name is, or goes, in order (names compare as the server sorts them)
  let lo = 0, hi = order.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (order[mid] < name) lo = mid + 1; else hi = mid; }
  return lo;
}

async function details(kind, ns, name) {
  const panel = document.getElementById("details");
  panel.hidden = false;
  document.getElementById("details-title").textContent = `${kind} ${ns ? ns + "/" : ""}${name}`;
  const q = `kind=${kind}&namespace=${encodeURIComponent(ns)}&name=${encodeURIComponent(name)}`;
  const body = document.getElementById("details-body");
  const show = async (what) => {
    body.textContent = "…";
    if (what === "logs") return streamLogs(q, body);
    const resp = await fetch(`/ui/api/${what}?${q}`);
    if (what === "events") {
      const list = resp.ok ? await resp.json() : [];
      body.textContent = list.length ? list.map((e) => `${e.last || ""} ${e.type} ${e.reason} (x${e.count}): ${e.message}`)
        .join("\n") : "No events.";
    } else body.textContent = await resp.text();
  };
  const tabs = ["yaml", "events"].concat(kind === "Pod" ? ["logs"] : []);
  document.getElementById("details-tabs").replaceChildren(
    ...tabs.map((t) => el("button", {type: "button", onclick: () => show(t)}, t)));
  show("yaml");
}

let logReader = null;
async function streamLogs(q, body) {
  if (logReader) logReader.cancel();
  const resp = await fetch(`/ui/api/logs?${q}`);
  body.textContent = "";
  logReader = resp.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const {done, value} = await logReader.read();
    if (done) break;
    body.textContent += decoder.decode(value, {stream: true});
  }
}

document.getElementById("close").addEventListener("click", () => {
  document.getElementById("details").hidden = true;
  if (logReader) { logReader.cancel(); logReader = null; }
});
document.getElementById("namespace").addEventListener("change", (e) => {
  history.replaceState(null, "", "?namespace=" + encodeURIComponent(e.target.value));
  samples.length = 0;
  connect();
});
connect();
