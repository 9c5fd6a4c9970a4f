"""Service data path side by side in one run: direct, minimal nft DNAT, nanokube nftables, HAProxy, userspace.

Rebuilds a small lab topology (drawn below) in network namespaces this script creates (all named
`nkb-*`) and always removes, at the end and at start (leftovers of a crashed run). Nothing touches the host's
own network namespace: every address, route, veth, bridge and nft table is made inside an nkb-* namespace.

    nkb-client 10.100.0.2 (default via 10.100.0.1)  -- veth --  nkb-node (ip_forward=1; 10.100.0.1 on vc-node,
    10.244.0.1 on bridge br0)  -- br0 + veths --  nkb-pod-1..3 10.244.0.11-13:8080 (nginx, 1 worker)

Paths (wrk -t2 -c64 --latency from nkb-client; keep-alive "ka" and `Connection: close` "close"); default set:
  direct       http://10.244.0.11:8080/ (one pod, no nft table in nkb-node)
  dnat         hand-written table: prerouting DNAT of 10.96.0.50:80 by `numgen random mod 3` (no masquerade)
  dnat-masq    the same plus kube-proxy's `masquerade fully-random` of the DNATed traffic (baselines row 2b)
  nanokube     table `ip nanokube` programmed by the real NftablesBackend (built as run.make_backend builds it,
               driven by a Proxier) in nkb-node: ClusterIP 10.96.0.60:80 over the three pods. The client is
               outside the pod CIDR, so nanokube masquerades it (as kube-proxy does with a cluster CIDR)
  nanokube-incluster  the same with pod_cidr 10.0.0.0/8, so the client counts as in-cluster and is not
               masqueraded (separates the masquerade cost from the rule-walk cost)
  nanokube-1k  nanokube with --services other Services x 3 endpoints in the table (label follows --services)
  nanokube-nocount, nanokube-incluster-nocount  the same two with the per-endpoint connection counters off
               (NetConfig.counters=False, as NANOKUBE_PROXY_COUNTERS=0 makes it): with both of a pair in --paths,
               the table is followed by the counters on/off ratios
  haproxy      HAProxy mode tcp roundrobin, nbthread 1, on 10.100.0.1:8001
  userspace    nanokube userspace mode as the server runs it (make_backend: WorkerPoolBackend with --workers
               processes, epoll relay) for a Service whose ClusterIP:port is 10.100.0.1:9000
Diagnostic paths (not in the default set): dnat-masq-plain (masquerade without fully-random) and
nanokube-plainmasq (nanokube's table with `fully-random` dropped from its two masquerade rules after the sync),
nanokube-incluster-fiblast (nanokube-incluster with the services chain's external-local set lookup moved before
its `fib saddr type local`).
Each kernel path is measured with only its own table in nkb-node (conntrack flushed before each run), the
proxies with no table. Before every measurement the TIME_WAIT sockets of all nkb-* namespaces are dropped
(`ss -K`), so no path inherits another's (see drop_time_wait). Paths alternate within each run; the median of
--runs is reported with the p50/p99/CPU of the median run. Proxy CPU is utime+stime from /proc/PID/stat of
the proxy processes (for userspace: the parent and its workers) over the wrk run. Run as root:

    python bench/proxy_datapath.py [--duration 10] [--runs 3] [--services 1000] [--workers 2]
                                   [--paths direct,dnat,...] [--kinds ka,close] [--dump DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_tools import require
from proxy_userspace import HAPROXY_CONF, NGINX_CONF, cpu_seconds

PREFIX = "nkb-"
CLIENT, NODE = "nkb-client", "nkb-node"
PODS = ["10.244.0.11", "10.244.0.12", "10.244.0.13"]
POD_PORT = 8080
DNAT_VIP, NK_VIP = "10.96.0.50", "10.96.0.60"
NODE_IP = "10.100.0.1"
HAPROXY_PORT, USERSPACE_PORT = 8001, 9000
SERVICE_CIDR, POD_CIDR = "10.96.0.0/12", "10.244.0.0/16"
DEFAULT_PATHS = "direct,dnat,dnat-masq,nanokube,nanokube-incluster,nanokube-1k,haproxy,userspace"
DUMP_DIR: Path | None = None  # --dump: where the nanokube paths save `nft list ruleset` of nkb-node
WRK_GRACE = 30  # seconds a wrk may overrun its duration before it is killed

DNAT_TABLE = """table ip nkb-dnat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {vip} tcp dport 80 dnat to numgen random mod 3 map {{ 0 : {p0}, 1 : {p1}, 2 : {p2} }} : {port}
  }}
{masq}}}
"""
MASQ_CHAIN = """  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat masquerade{flags}
  }}
"""


# -- namespaces -----------------------------------------------------------------------------------------------
def run(*argv: str, input: str | None = None, check: bool = True, timeout: float = 60) -> str:
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=check, timeout=timeout).stdout


def in_ns(ns: str, *argv: str, **kw) -> str:
    return run("ip", "netns", "exec", ns, *argv, **kw)


def our_namespaces() -> list[str]:
    names = [line.split()[0] for line in run("ip", "netns", "list").splitlines() if line.strip()]
    return [n for n in names if n.startswith(PREFIX)]


def remove_namespaces() -> None:
    """Kill whatever still runs in an nkb-* namespace (only this bench makes them), then delete them."""
    for ns in our_namespaces():
        for pid in run("ip", "netns", "pids", ns, check=False).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        run("ip", "netns", "delete", ns, check=False)


def build_topology() -> None:
    pods = [f"{PREFIX}pod-{i + 1}" for i in range(len(PODS))]
    for ns in (CLIENT, NODE, *pods):
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
    node = ["ip", "-n", NODE]
    run(*node, "link", "add", "vc-node", "type", "veth", "peer", "name", "vc-client", "netns", CLIENT)
    run(*node, "link", "add", "br0", "type", "bridge")
    run(*node, "addr", "add", f"{NODE_IP}/24", "dev", "vc-node")
    run(*node, "addr", "add", "10.244.0.1/24", "dev", "br0")
    run(*node, "link", "set", "vc-node", "up")
    run(*node, "link", "set", "br0", "up")
    run("ip", "-n", CLIENT, "addr", "add", "10.100.0.2/24", "dev", "vc-client")
    run("ip", "-n", CLIENT, "link", "set", "vc-client", "up")
    run("ip", "-n", CLIENT, "route", "add", "default", "via", NODE_IP)
    for i, (ns, ip) in enumerate(zip(pods, PODS, strict=True)):
        run(*node, "link", "add", f"vp-{i + 1}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        run(*node, "link", "set", f"vp-{i + 1}", "master", "br0", "up")
        run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "route", "add", "default", "via", "10.244.0.1")
    for ns in (CLIENT, NODE):
        in_ns(ns, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535")
    for ns in (NODE, *pods):
        in_ns(ns, "sysctl", "-qw", "net.core.somaxconn=4096")
    in_ns(NODE, "sysctl", "-qw", "net.ipv4.ip_forward=1")


def host_state() -> list[str]:
    """What this bench must never change on the host: its nft tables, routes, addresses."""
    return [*run("nft", "list", "tables", check=False).splitlines(),
            *run("ip", "route", "show", "table", "all", check=False).splitlines(),
            *run("ip", "-br", "addr", check=False).splitlines()]


def wait_listening(ns: str, ip: str, port: int, timeout: float = 15.0) -> None:
    code = ("import socket,sys,time\nend=time.monotonic()+float(sys.argv[3])\nwhile True:\n try:\n"
            "  socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=0.5).close();break\n except OSError:\n"
            "  if time.monotonic()>end: sys.exit(f'nothing listens on {sys.argv[1]}:{sys.argv[2]}')\n"
            "  time.sleep(0.05)\n")
    in_ns(ns, sys.executable, "-S", "-c", code, ip, str(port), str(timeout), timeout=timeout + 10)


def node_tables() -> list[str]:
    return [line.strip() for line in in_ns(NODE, "nft", "list", "tables").splitlines() if line.strip()]


def flush_conntrack() -> None:
    if shutil.which("conntrack"):
        in_ns(NODE, "conntrack", "-F", check=False)


# -- Services fed to a Proxier, as the informers would ------------------------------------------------------
def service_objects(name: str, ip: str, port: int, endpoints: list[str], target_port: int) -> tuple[dict, dict]:
    svc = {"metadata": {"name": name, "namespace": "bench"},
           "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}}
    eps = {"metadata": {"name": f"{name}-1", "namespace": "bench", "labels": {"kubernetes.io/service-name": name}},
           "addressType": "IPv4",
           "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in endpoints],
           "ports": [{"name": "http", "port": target_port, "protocol": "TCP"}]}
    return svc, eps


def other_services(n: int) -> list[tuple[dict, dict]]:
    out = []
    for i in range(n):
        ip = f"10.96.{1 + i // 250}.{i % 250 + 1}"  # never 10.96.0.x, where the VIPs under test live
        eps = [f"10.245.{(3 * i + k) // 250 % 250}.{(3 * i + k) % 250 + 1}" for k in range(3)]
        out.append(service_objects(f"other-{i}", ip, 80, eps, 8080))
    return out


def settings_for(mode: str, pod_cidr: str = POD_CIDR, workers: int = 2):  # -> ProxySettings
    from nanokube.proxy.run import ProxySettings

    return ProxySettings(mode=mode, node_name=NODE, node_ips=[NODE_IP], service_cidr=SERVICE_CIDR, pod_cidr=pod_cidr,
                         lb_pool="", bridge="br0", netns=NODE if mode == "nftables" else None, status_port=0,
                         userspace_workers=workers)


async def program(proxier, services: list[tuple[dict, dict]]) -> float:
    proxier.on_services_synced()
    proxier.on_endpointslices_synced()
    for svc, eps in services:
        proxier.on_service_add(svc)
        proxier.on_endpointslice_add(eps)
    t0 = time.perf_counter()
    await proxier.sync()
    return time.perf_counter() - t0


def userspace_main(ip: str, port: int, workers: int) -> None:
    """Child process (inside nkb-node): the userspace proxy as the server builds it; prints "ready PIDS"."""
    from nanokube.proxy.run import make_backend, make_proxier

    async def serve() -> None:
        settings = settings_for("userspace", workers=workers)
        backend = make_backend(settings)
        proxier = make_proxier(settings, backend)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        try:
            await program(proxier, [service_objects("web", ip, port, PODS, POD_PORT)])
            print("ready", os.getpid(), *getattr(backend, "pids", ()), flush=True)
            await stop.wait()
        finally:
            await backend.stop()

    asyncio.run(serve())


# -- paths ----------------------------------------------------------------------------------------------------
class Path_:
    kernel = True
    pids: list[int] = []

    def __init__(self, label: str, url: str) -> None:
        self.label, self.url = label, url
        self.notes: list[str] = []

    async def prepare(self) -> None:
        if node_tables():
            raise RuntimeError(f"{self.label}: nkb-node still has tables {node_tables()}")

    async def finish(self) -> None:
        pass


class DnatPath(Path_):
    def __init__(self, label: str, masquerade: str | None) -> None:
        """masquerade: None = plain DNAT, else the masquerade flags ("fully-random" as kube-proxy, "" = none)."""
        super().__init__(label, f"http://{DNAT_VIP}/")
        masq = "" if masquerade is None else MASQ_CHAIN.format(flags=f" {masquerade}" if masquerade else "")
        self.table = DNAT_TABLE.format(vip=DNAT_VIP, p0=PODS[0], p1=PODS[1], p2=PODS[2], port=POD_PORT, masq=masq)

    async def prepare(self) -> None:
        await super().prepare()
        in_ns(NODE, "nft", "-f", "-", input=self.table)
        flush_conntrack()

    async def finish(self) -> None:
        in_ns(NODE, "nft", "delete", "table", "ip", "nkb-dnat")


def chain_patch(settings, chain: str, edit: Callable[[str], str]) -> str:
    """Diagnostic only: nanokube's own rules of one fixed chain, edited, replacing that chain's rules in the
    table the backend programmed (what a change to nftrules.py would give, measured without editing it)."""
    from nanokube.proxy.nftrules import FAMILY, TABLE, NetConfig, base_ruleset

    cfg = NetConfig(pod_cidr=settings.pod_cidr, service_cidr=settings.service_cidr, lb_pool="")
    prefix = f"add rule {FAMILY} {TABLE} {chain} "
    edited = (edit(line[len(prefix):]) for line in base_ruleset(cfg) if line.startswith(prefix))
    rules = [prefix + rule for rule in edited if rule]  # an edit returning "" drops the rule
    return "\n".join([f"flush chain {FAMILY} {TABLE} {chain}", *rules]) + "\n"


def without_fully_random(rule: str) -> str:
    return rule.replace(" fully-random", "")


def without_affinity_lookup(rule: str) -> str:
    """Drops the services chain's `dnat ... map @affinity` (what a path without session affinity would walk)."""
    return "" if "map @affinity" in rule else rule


def set_lookup_before_fib(rule: str) -> str:
    """`fib saddr type local <key> @external-local jump ...` -> the set lookup first, so the FIB lookup runs
    only for external-local frontends instead of for every new connection."""
    head, fib, rest = rule.partition("fib saddr type local ")
    if not fib:
        return rule
    lookup, jump, target = rest.partition(" jump ")
    return f"{head}{lookup} {fib.strip()}{jump}{target}"


class NanokubeNftPath(Path_):
    def __init__(self, label: str, others: int, pod_cidr: str = POD_CIDR,
                 patch: tuple[str, Callable[[str], str]] | None = None, counters: bool = True) -> None:
        super().__init__(label, f"http://{NK_VIP}/")
        self.others, self.pod_cidr, self.patch, self.counters = others, pod_cidr, patch, counters
        self.backend = None
        self.sync_times: list[float] = []
        self.counted = 0  # new connections to the VIP the kernel counted in the last measurement

    async def prepare(self) -> None:
        from nanokube.proxy.run import make_backend, make_proxier

        await super().prepare()
        settings = settings_for("nftables", pod_cidr=self.pod_cidr)
        self.backend = make_backend(settings)
        self.backend.cfg = dataclasses.replace(self.backend.cfg, counters=self.counters)
        proxier = make_proxier(settings, self.backend)
        services = [service_objects("web", NK_VIP, 80, PODS, POD_PORT), *other_services(self.others)]
        self.sync_times.append(await program(proxier, services))
        tables = node_tables()
        if tables != ["table ip nanokube"]:
            raise RuntimeError(f"{self.label}: expected only nanokube's table in nkb-node, found {tables}")
        if f"{NK_VIP} . tcp . 80" not in in_ns(NODE, "nft", "list", "map", "ip", "nanokube", "service-ips"):
            raise RuntimeError(f"{self.label}: {NK_VIP}:80 is not in nanokube's service-ips map")
        if self.patch:
            in_ns(NODE, "nft", "-f", "-", input=chain_patch(settings, *self.patch))
        if DUMP_DIR and not (dump := DUMP_DIR / f"ruleset-{self.label}.nft").exists():
            dump.write_text(in_ns(NODE, "nft", "list", "ruleset"))
        flush_conntrack()

    async def finish(self) -> None:
        assert self.backend is not None
        counts = await self.backend.counters()
        self.counted = sum(counts.get((NK_VIP, "TCP", 80), {}).values())
        await self.backend.stop()
        self.backend = None


class ProcessPath(Path_):
    """A userspace proxy that runs for the whole bench; its CPU is read from /proc/PID/stat."""

    kernel = False

    def __init__(self, label: str, url: str, pids: list[int]) -> None:
        super().__init__(label, url)
        self.pids = pids


# -- measuring ------------------------------------------------------------------------------------------------
def tcp_ext(ns: str, field: str) -> int:
    names, values = [line.split() for line in in_ns(ns, "cat", "/proc/net/netstat").splitlines()
                     if line.startswith("TcpExt:")][:2]
    return int(values[names.index(field)])


def drop_time_wait() -> None:
    """Each measurement starts without TIME_WAIT sockets from earlier ones. A pod's TIME_WAIT socket for the
    same 4-tuple but a different client timestamp offset (another VIP, or SNAT) makes the pod drop new SYNs by
    PAWS (1 s SYN retransmit each); across paths that is a bench artefact, within one path it is real."""
    for ns in (CLIENT, NODE, *(f"{PREFIX}pod-{i + 1}" for i in range(len(PODS)))):
        in_ns(ns, "ss", "-K", "state", "time-wait", check=False)


def counters() -> tuple[int, int]:
    """(SYNs the pods dropped on TIME_WAIT by PAWS, SYN retransmits of the client): why a close run stalls."""
    paws = sum(tcp_ext(f"{PREFIX}pod-{i + 1}", "PAWSTimewait") for i in range(len(PODS)))
    return paws, tcp_ext(CLIENT, "TCPSynRetrans")


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, duration: int, close: bool) -> tuple[float, float, float, str]:
    argv = ["wrk", "-t2", "-c64", f"-d{duration}s", "--latency", url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    out = in_ns(CLIENT, *argv, timeout=duration + WRK_GRACE)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = to_ms(re.search(r"^\s*50%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    p99 = to_ms(re.search(r"^\s*99%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    errors = "; ".join(m.strip() for m in re.findall(r"^\s*(Socket errors:.*|Non-2xx.*)$", out, re.M))
    return rps, p50, p99, errors


Result = tuple[float, float, float, float | None, str, str]  # rps, p50 ms, p99 ms, proxy cores, errors, stalls


async def measure(path: Path_, duration: int, close: bool) -> Result:
    drop_time_wait()
    await path.prepare()
    try:
        k0 = counters()
        c0, t0 = cpu_seconds(path.pids), time.monotonic()
        rps, p50, p99, errors = await asyncio.to_thread(wrk, path.url, duration, close)
        cpu = None if path.kernel else (cpu_seconds(path.pids) - c0) / (time.monotonic() - t0)
        k1 = counters()
    finally:
        await path.finish()
    stalls = f"PAWS-dropped SYNs {k1[0] - k0[0]}, client SYN retransmits {k1[1] - k0[1]}"
    return rps, p50, p99, cpu, errors, stalls


def table(results: dict[tuple[str, str], list[Result]], kinds: tuple[str, ...], labels: list[str]) -> str:
    lines = ["| path | kind | req/s median (runs) | p50 ms | p99 ms | proxy CPU (cores) | vs direct | vs minimal DNAT |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for kind in kinds:
        ref = {base: statistics.median(r[0] for r in results[base, kind])
               for base in ("direct", "dnat") if (base, kind) in results}
        for label in labels:
            rows = results[label, kind]
            med = statistics.median(r[0] for r in rows)
            row = min(rows, key=lambda r: abs(r[0] - med))  # latency and CPU of the median run
            runs = " / ".join(f"{r[0]:,.0f}" for r in rows)
            cpu = "-" if row[3] is None else f"{row[3]:.2f}"
            vs = [f"{med / ref[b]:.2f}" if b in ref else "" for b in ("direct", "dnat")]
            lines.append(f"| {label} | {kind} | {med:,.0f} ({runs}) | {row[1]:.2f} | {row[2]:.2f} | {cpu} | "
                         f"{vs[0]} | {vs[1]} |")
    return "\n".join(lines)


def counter_ratios(results: dict[tuple[str, str], list[Result]], kinds: tuple[str, ...], labels: list[str]) -> str:
    """Counters on / off, for every path measured both ways: the ratio of the medians, and the median of the
    per-run ratios (each run measures the pair back to back, so it cancels slow drifts of the machine's load)."""
    lines = ["| path | kind | on / off (medians) | on / off (median of per-run ratios) | per-run ratios |",
             "|---|---|---:|---:|---|"]
    for kind in kinds:
        for label in labels:
            off = f"{label}-nocount"
            if label.endswith("-nocount") or (off, kind) not in results:
                continue
            on_runs, off_runs = [r[0] for r in results[label, kind]], [r[0] for r in results[off, kind]]
            per_run = [a / b for a, b in zip(on_runs, off_runs, strict=True)]
            lines.append(f"| {label} | {kind} | {statistics.median(on_runs) / statistics.median(off_runs):.3f} | "
                         f"{statistics.median(per_run):.3f} | {' / '.join(f'{x:.3f}' for x in per_run)} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def make_paths(names: list[str], services: int, pids: dict[str, list[int]]) -> list[Path_]:
    makers: dict[str, Callable[[], Path_]] = {
        "direct": lambda: Path_("direct", f"http://{PODS[0]}:{POD_PORT}/"),
        "dnat": lambda: DnatPath("dnat", masquerade=None),
        "dnat-masq": lambda: DnatPath("dnat-masq", masquerade="fully-random"),
        "dnat-masq-plain": lambda: DnatPath("dnat-masq-plain", masquerade=""),
        "nanokube": lambda: NanokubeNftPath("nanokube", 0),
        "nanokube-incluster": lambda: NanokubeNftPath("nanokube-incluster", 0, pod_cidr="10.0.0.0/8"),
        "nanokube-nocount": lambda: NanokubeNftPath("nanokube-nocount", 0, counters=False),
        "nanokube-incluster-nocount": lambda: NanokubeNftPath("nanokube-incluster-nocount", 0, pod_cidr="10.0.0.0/8",
                                                              counters=False),
        "nanokube-plainmasq": lambda: NanokubeNftPath("nanokube-plainmasq", 0,
                                                      patch=("masquerading", without_fully_random)),
        "nanokube-incluster-noaff": lambda: NanokubeNftPath("nanokube-incluster-noaff", 0, pod_cidr="10.0.0.0/8",
                                                            patch=("services", without_affinity_lookup)),
        "nanokube-incluster-fiblast": lambda: NanokubeNftPath("nanokube-incluster-fiblast", 0, pod_cidr="10.0.0.0/8",
                                                              patch=("services", set_lookup_before_fib)),
        "haproxy": lambda: ProcessPath("haproxy", f"http://{NODE_IP}:{HAPROXY_PORT}/", pids.get("haproxy", [])),
        "userspace": lambda: ProcessPath("userspace", f"http://{NODE_IP}:{USERSPACE_PORT}/", pids.get("userspace", [])),
    }
    out = []
    for name in names:
        if re.fullmatch(r"nanokube-\d+k", name):
            size = f"{services // 1000}k" if services % 1000 == 0 else str(services)
            out.append(NanokubeNftPath(f"nanokube-{size}", services))
        elif name in makers:
            out.append(makers[name]())
        else:
            raise SystemExit(f"unknown path {name!r}; known: {', '.join(makers)}, nanokube-1k")
    return out


def start_lab(args: argparse.Namespace, tmp: Path, procs: list[subprocess.Popen[str]]) -> dict[str, list[int]]:
    """Namespaces, nginx pods and the long-running proxies; returns the proxies' pids."""
    build_topology()
    for n, ip in enumerate(PODS):
        conf = tmp / f"nginx-{n}.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, n=n, ip=ip, port=POD_PORT))
        procs.append(subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}pod-{n + 1}", "nginx", "-c", str(conf),
                                       "-p", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True))
    for ip in PODS:
        wait_listening(CLIENT, ip, POD_PORT)
    names = [p for p in args.paths.split(",") if p]
    pids: dict[str, list[int]] = {}
    if "haproxy" in names:
        servers = "\n".join(f"    server s{n} {ip}:{POD_PORT}" for n, ip in enumerate(PODS))
        conf = tmp / "haproxy.cfg"
        conf.write_text(HAPROXY_CONF.format(ip=NODE_IP, port=HAPROXY_PORT, servers=servers))
        procs.append(subprocess.Popen(["ip", "netns", "exec", NODE, "haproxy", "-f", str(conf), "-db"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True))
        wait_listening(CLIENT, NODE_IP, HAPROXY_PORT)
        pids["haproxy"] = [procs[-1].pid]  # `ip netns exec` execs the command: same pid
    if "userspace" in names:
        procs.append(subprocess.Popen(["ip", "netns", "exec", NODE, sys.executable, __file__, "userspace", NODE_IP,
                                       str(USERSPACE_PORT), str(args.workers)], stdout=subprocess.PIPE, text=True))
        assert procs[-1].stdout is not None
        line = procs[-1].stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"userspace proxy did not start: {line!r}")
        pids["userspace"] = [int(p) for p in line[1:]]
        wait_listening(CLIENT, NODE_IP, USERSPACE_PORT)
    return pids


async def bench(args: argparse.Namespace, pids: dict[str, list[int]]) -> None:
    paths = make_paths([p for p in args.paths.split(",") if p], args.services, pids)
    kinds = tuple(k for k in args.kinds.split(",") if k in ("ka", "close"))
    results: dict[tuple[str, str], list[Result]] = {}
    errors: list[str] = []
    for r in range(args.runs):
        for kind in kinds:
            for path in paths:
                res = await measure(path, args.duration, kind == "close")
                results.setdefault((path.label, kind), []).append(res)
                counted = f"  counted {path.counted:,} new connections" if getattr(path, "counted", 0) else ""
                print(f"run {r + 1} {kind:5} {path.label:20} {res[0]:10,.0f} req/s  p50 {res[1]:.2f} ms  "
                      f"p99 {res[2]:.2f} ms  cpu {res[3] if res[3] is None else round(res[3], 2)}  {res[5]}  {res[4]}"
                      f"{counted}", file=sys.stderr, flush=True)
                if res[4]:
                    errors.append(f"run {r + 1} {kind} {path.label}: {res[4]}")
                time.sleep(1)
    print(f"wrk -t2 -c64 -d{args.duration}s --latency; median of {args.runs} runs; {os.cpu_count()} CPUs; "
          f"nginx-light pods; userspace workers {args.workers}")
    print(table(results, kinds, [p.label for p in paths]))
    ratios = counter_ratios(results, kinds, [p.label for p in paths])
    if ratios:
        print("\n" + ratios)
    for path in paths:
        if isinstance(path, NanokubeNftPath) and path.sync_times:
            print(f"\n{path.label}: full sync (render + nft -f) median "
                  f"{statistics.median(path.sync_times) * 1000:.0f} ms over {len(path.sync_times)} syncs")
    if errors:
        print("\nwrk errors:\n" + "\n".join(errors))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--services", type=int, default=1000, help="other Services in the nanokube-Nk path")
    parser.add_argument("--paths", default=DEFAULT_PATHS)
    parser.add_argument("--workers", type=int, default=2, help="userspace worker processes")
    parser.add_argument("--kinds", default="ka,close", help="ka (keep-alive) and/or close (new connections)")
    parser.add_argument("--dump", type=Path, help="save nkb-node's nft ruleset of each nanokube path here")
    args = parser.parse_args()
    global DUMP_DIR
    DUMP_DIR = args.dump
    paths = [p.strip() for p in args.paths.split(",")]
    require("ip", "nft", "wrk", "nginx", *(["haproxy"] if "haproxy" in paths else []),
            root="it makes network namespaces")
    before = host_state()
    print(f"uptime before: {run('uptime').strip()}", flush=True)
    remove_namespaces()
    tmp = Path(tempfile.mkdtemp(prefix="nkb-datapath-"))
    os.chmod(tmp, 0o755)
    procs: list[subprocess.Popen[str]] = []
    try:
        pids = start_lab(args, tmp, procs)
        asyncio.run(bench(args, pids))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        remove_namespaces()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"uptime after: {run('uptime').strip()}")
        after = host_state()
        if after != before:
            changed = [f"-{line}" for line in before if line not in after] + [f"+{line}" for line in after
                                                                               if line not in before]
            print("WARNING: the host's nft tables, routes or addresses changed during the run (not by this bench:"
                  " it only works inside nkb-* namespaces): " + "; ".join(changed))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "userspace":
        userspace_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
