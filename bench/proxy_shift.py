"""Endpoint change -> traffic shifted: how long after an EndpointSlice write new connections reach the new pod.

Issue 5: "endpoint change -> traffic shifted p50/p99 (goal p99 under 50 ms at 1,000 Services)". Measured through
the whole real system: `nanokube server` (API, controllers, agent, proxy, DNS in one process) runs in a fresh
network namespace `nk-shift-<random>` that this bench makes and always deletes; everything else (API calls,
probing the ClusterIP) runs as a host process inside that namespace (the node), so no packet leaves it.

Set-up: two nanokube/echo Pods (shift-a, shift-b) Running+Ready; a selector-less Service `shift` with a
hand-managed EndpointSlice (managed-by proxy-shift-bench) pointing at shift-a; N filler selector-less Services
(--services, default 1,000), each with a hand-made EndpointSlice of 3 made-up endpoints in the pod CIDR.
The bench waits until the proxy's status endpoint (127.0.0.1:10256/services) shows all of them programmed.

Measurement (--changes times): a prober opens a new TCP connection to the ClusterIP every ~--interval
(at most --inflight at a time), sends `GET /` and reads which pod answered. With traffic settled on the old pod,
t0 is taken just before the PATCH that moves the slice to the other pod. Reported per change:
  shift      t0 -> answer of the first probe to reach the new pod such that no probe opened later reached the
             old one (the goal's number); also when that probe's connection was opened
  first-new  t0 -> the first answer from the new pod
  where the time goes: PATCH acknowledged, the same event on a watch of our own (a stand-in for the proxy's
             informer), and the proxy's sync start for this change (its `programmed_at`, wall clock)
  failures   probes refused / reset / timed out from t0 until settled (the old pod stays up: expect none)

    sudo python bench/proxy_shift.py [--mode both|netns|loopback] [--services 1000] [--changes 50]
                                     [--interval 0.001] [--json out.json] [--log-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import errno
import itertools
import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_tools import require

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NAMESPACE = "default"
SLICE = "shift-manual"
MANAGED_BY = "proxy-shift-bench"
STATUS = ("127.0.0.1", 10256)
POD_PREFIX = {"netns": "10.244", "loopback": "127.244"}  # the modes' default pod CIDRs (/16)
REQUEST = b"GET / HTTP/1.0\r\n\r\n"
POD_MARK = b'"pod": "'


# --- inside the namespace: the cluster's objects --------------------------------------------------------------

def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "ClusterIP", "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]}}


def endpoint(ip: str, node: str = "", pod: str = "") -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False}}
    if node:
        ep["nodeName"] = node
    if pod:
        ep["targetRef"] = {"kind": "Pod", "namespace": NAMESPACE, "name": pod}
    return ep


def endpoint_slice(name: str, service_name: str, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service_name,
                                                  "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": [{"name": "", "protocol": "TCP", "port": 8080}]}


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "proxy-shift"}},
            "spec": {"containers": [{"name": "echo", "image": "nanokube/echo", "ports": [{"containerPort": 8080}]}]}}


def filler_ips(i: int, prefix: str) -> list[str]:
    """3 made-up pod addresses per filler, from x.y.128.1 upwards (real pods get addresses low in the node's /24)."""
    return [f"{prefix}.{128 + (3 * i + k) // 250}.{(3 * i + k) % 250 + 1}" for k in range(3)]


async def bounded(coros: list[Any], limit: int = 32) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c
    return await asyncio.gather(*(one(c) for c in coros))


async def http_get_local(host: str, port: int, path: str) -> Any:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def wall(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


# --- inside the namespace: the prober -------------------------------------------------------------------------

@dataclass
class Probe:
    opened: float  # time.monotonic() just before connect (the SYN)
    done: float = 0.0
    outcome: str = ""  # a pod name, or refused / reset / timeout / errno name / garbled ("" while in flight)


@dataclass
class Prober:
    """New connection every `interval` (at most `inflight` at once), GET /, records which pod answered."""

    ip: str
    port: int
    interval: float
    inflight: int
    timeout: float = 2.0
    probes: list[Probe] = field(default_factory=list)
    running: int = 0
    skipped: int = 0

    async def run(self) -> None:
        next_at = time.monotonic()
        while True:
            if self.running < self.inflight:
                self.running += 1
                probe = Probe(time.monotonic())
                self.probes.append(probe)
                asyncio.get_running_loop().create_task(self._probe(probe))
            else:
                self.skipped += 1
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:  # fell behind (the loop was busy): no catch-up burst
                next_at = now
            await asyncio.sleep(next_at - now)

    async def _probe(self, probe: Probe) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        probe.opened = time.monotonic()  # the task may start later than it was created, when the loop was busy
        try:
            async with asyncio.timeout(self.timeout):
                await loop.sock_connect(sock, (self.ip, self.port))
                await loop.sock_sendall(sock, REQUEST)
                data = b""
                while chunk := await loop.sock_recv(sock, 4096):
                    data += chunk
            at = data.find(POD_MARK)
            end = data.find(b'"', at + len(POD_MARK)) if at >= 0 else -1
            probe.outcome = data[at + len(POD_MARK):end].decode() if end > 0 else "garbled"
        except TimeoutError:
            probe.outcome = "timeout"
        except ConnectionRefusedError:
            probe.outcome = "refused"
        except ConnectionResetError:
            probe.outcome = "reset"
        except OSError as err:
            probe.outcome = errno.errorcode.get(err.errno or 0, "oserror")
        finally:
            sock.close()
            probe.done = time.monotonic()
            self.running -= 1

    def since(self, t: float) -> list[Probe]:
        """Probes opened at or after t (the list is in opening order)."""
        lo, hi = 0, len(self.probes)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.probes[mid].opened < t:
                lo = mid + 1
            else:
                hi = mid
        return self.probes[lo:]


async def settled(prober: Prober, pod_name: str, quiet: float, timeout: float = 10.0) -> None:
    """Until every probe opened in the last `quiet` seconds (and at least 20 of them) answered from `pod_name`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recent = [p for p in prober.since(time.monotonic() - quiet - 0.5) if p.outcome]
        window = [p for p in recent if p.opened >= recent[-1].opened - quiet] if recent else []
        if len(window) >= 20 and window[-1].opened - window[0].opened >= quiet * 0.9 \
                and all(p.outcome == pod_name for p in window):
            return
        await asyncio.sleep(0.01)
    recent = prober.since(time.monotonic() - quiet)
    seen: dict[str, int] = {}
    for p in recent:
        seen[p.outcome or "in flight"] = seen.get(p.outcome or "in flight", 0) + 1
    raise RuntimeError(f"traffic did not settle on {pod_name} in {timeout}s: last {quiet}s {seen}")


def analyse(probes: list[Probe], t0: float, old: str, new: str) -> dict[str, Any]:
    """Shift time and failures of one change, from the probes opened around it (in opening order)."""
    old_opened = [p.opened for p in probes if p.outcome == old]
    last_old = max(old_opened) if old_opened else -math.inf
    shifted = next((p for p in probes if p.opened > last_old and p.outcome == new), None)
    new_done = [p.done for p in probes if p.outcome == new]
    first_new_open = min((p.opened for p in probes if p.outcome == new), default=math.inf)
    failures: dict[str, int] = {}
    for p in probes:
        if p.opened >= t0 and p.outcome not in (old, new):
            failures[p.outcome] = failures.get(p.outcome, 0) + 1
    # The measurement's resolution: how long before the shifted probe the previous probe was opened.
    before = [a for a, b in itertools.pairwise(probes) if shifted is not None and b is shifted]
    return {
        "shift_ms": (shifted.done - t0) * 1e3 if shifted else None,
        "shift_opened_ms": (shifted.opened - t0) * 1e3 if shifted else None,
        "first_new_ms": (min(new_done) - t0) * 1e3 if new_done else None,
        "old_after_first_new": sum(1 for p in probes if p.outcome == old and p.opened > first_new_open),
        "failures": failures,
        "probes": sum(1 for p in probes if p.opened >= t0),
        "resolution_ms": (shifted.opened - before[0].opened) * 1e3 if shifted and before else None,
    }


# --- inside the namespace: the whole run ----------------------------------------------------------------------

class SliceWatch:
    """Our own watch on the `shift` slice: when each resourceVersion arrived (like the proxy's informer)."""

    def __init__(self, client: Any, resource: Any) -> None:
        self.client, self.resource = client, resource
        self.arrived: dict[str, float] = {}

    async def run(self, from_rv: str) -> None:
        async for _etype, obj in self.client.watch(self.resource, NAMESPACE, resource_version=from_rv,
                                                   label_selector="kubernetes.io/service-name=shift"):
            self.arrived[obj["metadata"]["resourceVersion"]] = time.monotonic()


async def wait_pods_ready(client: Any, pods_res: Any, names: list[str], timeout: float = 60.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = (await client.list(pods_res, NAMESPACE, label_selector="bench=proxy-shift"))["items"]
        ready = {}
        for p in items:
            status = p.get("status") or {}
            ok = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            if ok and status.get("phase") == "Running" and status.get("podIP"):
                ready[p["metadata"]["name"]] = p
        if set(names) <= set(ready):
            return ready
        if time.monotonic() > deadline:
            raise RuntimeError(f"pods not Running+Ready in {timeout}s: {sorted(ready)}")
        await asyncio.sleep(0.1)


async def wait_programmed(want: dict[str, list[str]], timeout: float) -> dict[str, Any]:
    """Until the proxy's /services shows every wanted Service with exactly these endpoints."""
    deadline = time.monotonic() + timeout
    missing: list[str] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            programmed = await http_get_local(*STATUS, "/services")
            missing = [k for k, eps in want.items() if (programmed.get(k) or {}).get("endpoints") != eps]
            if not missing:
                return programmed
        await asyncio.sleep(0.25)
    raise RuntimeError(f"proxy did not program {len(missing)} Services in {timeout}s, e.g. {missing[:3]}")


class NftMonitor:
    """`nft monitor` in the namespace (netns mode): when each committed ruleset change became visible."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.proc: asyncio.subprocess.Process | None = None

    async def run(self) -> None:
        self.proc = await asyncio.create_subprocess_exec("nft", "monitor", "ruleset", stdout=asyncio.subprocess.PIPE,
                                                         stderr=asyncio.subprocess.DEVNULL)
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                self.lines.append((time.monotonic(), line.decode(errors="replace")))
        finally:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    def first(self, after: float, text: str) -> float | None:
        return next((t for t, line in self.lines if t >= after and text in line), None)


async def time_commands(runs: int = 20) -> dict[str, float]:
    """p50/p90 ms of the proxy's kind of incremental commit (one endpoint-map element added, then deleted) on the
    live table, done as the proxy does it (`nft -f -` subprocess) and in-process through libnftables; and of
    spawning /bin/true. All from this small process, so outside the server's own load."""
    key = "10.111.255.254 . tcp . 80 . 0 : 10.244.255.254 . 8080"  # a ClusterIP no Service has

    async def timed(argv: list[str], script: str | None = None) -> float:
        t = time.monotonic()
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(script.encode() if script else None)
        if proc.returncode:
            raise RuntimeError(f"{argv} failed: {err.decode()[:300]}")
        return (time.monotonic() - t) * 1e3

    scripts = [f"{op} element ip nanokube endpoints-tcp {{ {key} }}\n" for op in ("add", "delete")]
    nft, true, lib = [], [], []
    for _ in range(runs):
        for script in scripts:
            nft.append(await timed(["nft", "-f", "-"], script))
        true.append(await timed(["true"]))
    # The same commits through libnftables in this process (one context kept, as a proxy could): no fork/exec,
    # no cache rebuilt per call.
    nftlib = ctypes.CDLL("libnftables.so.1")
    nftlib.nft_ctx_new.restype = ctypes.c_void_p
    nftlib.nft_ctx_buffer_output.argtypes = nftlib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    nftlib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    nftlib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    ctx = nftlib.nft_ctx_new(0)
    nftlib.nft_ctx_buffer_output(ctx)
    nftlib.nft_ctx_buffer_error(ctx)
    try:
        for _ in range(runs):
            for script in scripts:
                t = time.monotonic()
                if await asyncio.to_thread(nftlib.nft_run_cmd_from_buffer, ctx, script.encode()):
                    raise RuntimeError(f"libnftables failed on {script!r}")
                lib.append((time.monotonic() - t) * 1e3)
    finally:
        nftlib.nft_ctx_free(ctx)
    return {"nft_p50_ms": round(pct(nft, .5), 1), "nft_p90_ms": round(pct(nft, .9), 1),
            "spawn_true_p50_ms": round(pct(true, .5), 1), "libnftables_p50_ms": round(pct(lib, .5), 2),
            "libnftables_p90_ms": round(pct(lib, .9), 2)}


@dataclass
class Cluster:
    """What the set-up made: the API client, the pods' IPs, the shift Service's ClusterIP and slice versions."""

    client: Any
    slice_res: Any
    ips: dict[str, str]
    endpoints: dict[str, list[dict[str, Any]]]
    cluster_ip: str
    slice_rv: str
    programmed: int
    info: dict[str, Any]


async def set_up(client: Any, args: argparse.Namespace, say: Any) -> Cluster:
    from nanokube.api.served_resources import BY_KIND

    pods_res, svc_res = BY_KIND["", "Pod"], BY_KIND["", "Service"]
    slice_res = BY_KIND["discovery.k8s.io", "EndpointSlice"]
    t = time.monotonic()
    for name in ("shift-a", "shift-b"):
        for attempt in range(50):  # the default ServiceAccount may not exist for a moment after start
            try:
                await client.create(pods_res, pod(name), NAMESPACE)
                break
            except Exception:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
    ready = await wait_pods_ready(client, pods_res, ["shift-a", "shift-b"])
    ips = {name: p["status"]["podIP"] for name, p in ready.items()}
    node = ready["shift-a"]["spec"].get("nodeName", "")
    say(f"pods Running+Ready in {time.monotonic() - t:.1f}s: {ips}")

    svc = await client.create(svc_res, service("shift"), NAMESPACE)
    eps = {name: [endpoint(ips[name], node, name)] for name in ips}
    created = await client.create(slice_res, endpoint_slice(SLICE, "shift", eps["shift-a"]), NAMESPACE)
    t = time.monotonic()
    prefix = POD_PREFIX[args.mode]
    await bounded([client.create(svc_res, service(f"fill-{i}"), NAMESPACE) for i in range(args.services)]
                  + [client.create(slice_res, endpoint_slice(f"fill-{i}-manual", f"fill-{i}",
                                                             [endpoint(ip) for ip in filler_ips(i, prefix)]),
                                   NAMESPACE) for i in range(args.services)])
    created_in = time.monotonic() - t
    want = {f"{NAMESPACE}/fill-{i}": sorted(f"{ip}:8080" for ip in filler_ips(i, prefix))
            for i in range(args.services)}
    want[f"{NAMESPACE}/shift"] = [f"{ips['shift-a']}:8080"]
    programmed = await wait_programmed(want, timeout=300)
    programmed_in = time.monotonic() - t
    status = await http_get_local(*STATUS, "/healthz")
    say(f"{args.services} filler Services + slices created in {created_in:.1f}s, all {len(programmed)} "
        f"Services programmed after {programmed_in:.1f}s (proxy mode {status.get('mode')}, "
        f"{status.get('syncs')} syncs); ClusterIP {svc['spec']['clusterIP']}")
    return Cluster(client, slice_res, ips, eps, svc["spec"]["clusterIP"], created["metadata"]["resourceVersion"],
                   len(programmed), {"proxy_mode": status.get("mode"), "filler_create_s": round(created_in, 2),
                                     "programmed_s": round(programmed_in, 2)})


async def one_change(c: Cluster, prober: Prober, watch: SliceWatch, nft: NftMonitor | None, old: str, new: str,
                     args: argparse.Namespace) -> dict[str, Any]:
    await settled(prober, old, args.settle)
    mark = len(prober.probes)
    t0_wall, t0 = time.time(), time.monotonic()
    resp = await c.client.patch(c.slice_res, SLICE, {"endpoints": c.endpoints[new]}, NAMESPACE)
    acked = time.monotonic()
    await settled(prober, new, args.settle)
    window = prober.probes[max(0, mark - 2 * args.inflight):]
    while any(not p.outcome for p in window if p.opened <= time.monotonic() - args.settle):
        await asyncio.sleep(0.005)  # probes opened before the change still in flight
    result = analyse([p for p in window if p.outcome], t0, old, new)
    result["direction"] = f"{old[-1]}->{new[-1]}"
    result["ack_ms"] = (acked - t0) * 1e3
    rv = resp["metadata"]["resourceVersion"]
    result["watch_event_ms"] = (watch.arrived[rv] - t0) * 1e3 if rv in watch.arrived else None
    state = (await http_get_local(*STATUS, "/services")).get(f"{NAMESPACE}/shift") or {}
    ok = state.get("endpoints") == [f"{c.ips[new]}:8080"]
    result["sync_start_ms"] = (wall(state["programmed_at"]) - t0_wall) * 1e3 if ok else None
    seen = nft.first(t0, f": {c.ips[new]} . 8080") if nft else None
    result["nft_commit_ms"] = (seen - t0) * 1e3 if seen is not None else None
    if args.trace:
        end = (result["shift_ms"] or 1e3) / 1e3 + 0.02
        print("      opened/took/pod (ms): " + " ".join(
            f"{(p.opened - t0) * 1e3:.1f}/{(p.done - p.opened) * 1e3:.1f}/{p.outcome[-1:]}"
            for p in window if -0.01 <= p.opened - t0 <= end and p.outcome), file=sys.stderr)
    return result


async def inner(args: argparse.Namespace) -> dict[str, Any]:
    from nanokube.client import ApiClient

    data = Path(args.data_dir)
    client = ApiClient("https://127.0.0.1:6443", (data / "token").read_text().strip(),
                       ca_file=str(data / "pki" / "ca.crt"))
    say = lambda msg: print(f"  [{args.mode}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    tasks: list[asyncio.Task] = []
    try:
        c = await set_up(client, args, say)
        watch = SliceWatch(client, c.slice_res)
        tasks.append(asyncio.create_task(watch.run(c.slice_rv)))
        nft = NftMonitor() if args.mode == "netns" else None
        if nft:
            tasks.append(asyncio.create_task(nft.run()))
        prober = Prober(c.cluster_ip, 80, args.interval, args.inflight)
        tasks.append(asyncio.create_task(prober.run()))
        began = time.monotonic()
        names = ["shift-a", "shift-b"]
        changes = []
        for i in range(args.changes):
            r = await one_change(c, prober, watch, nft, names[i % 2], names[(i + 1) % 2], args)
            changes.append(r)
            say(f"change {i + 1}/{args.changes} {r['direction']}: shift {fmt(r['shift_ms'])} ms "
                f"(first new {fmt(r['first_new_ms'])}, ack {fmt(r['ack_ms'])}, event {fmt(r['watch_event_ms'])}, "
                f"sync start {fmt(r['sync_start_ms'])}, nft commit {fmt(r['nft_commit_ms'])}) "
                f"failures {r['failures'] or 0}")
        elapsed = time.monotonic() - began
        all_failures: dict[str, int] = {}
        for p in prober.probes:
            if p.outcome not in ("", *names):
                all_failures[p.outcome] = all_failures.get(p.outcome, 0) + 1
        status = await http_get_local(*STATUS, "/healthz")
        if nft:
            c.info["standalone"] = await time_commands()
        return {"mode": args.mode, **c.info, "services_programmed": c.programmed, "fillers": args.services,
                "changes": changes, "probes": len(prober.probes), "probe_rate": round(len(prober.probes) / elapsed),
                "probes_skipped_inflight_limit": prober.skipped, "failures_total": all_failures,
                "proxy_syncs": status.get("syncs")}
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


# --- outside: the namespace and the server --------------------------------------------------------------------

def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    from tests.netns.cluster import NetnsCluster

    tmp = Path(tempfile.mkdtemp(prefix="nk-shift-"))
    cluster = NetnsCluster(name=f"nk-shift-{secrets.token_hex(4)}", data_dir=tmp / "data",
                           log_path=tmp / "server.log")
    load_before = os.getloadavg()
    try:
        extra = ["--network", mode, "--node-name", "nk-shift"]  # after the helper's own --network netns: last wins
        cluster.start(*extra, *(["-v"] if args.verbose_server else []), timeout=60)
        print(f"[{mode}] server ready in namespace {cluster.name} after {cluster.started_in:.1f}s", file=sys.stderr)
        cmd = ["ip", "netns", "exec", cluster.name, sys.executable, str(Path(__file__).resolve()), "--inner",
               "--mode", mode, "--data-dir", str(cluster.data_dir), "--services", str(args.services),
               "--changes", str(args.changes), "--interval", str(args.interval), "--inflight", str(args.inflight),
               "--settle", str(args.settle), *(["--trace"] if args.trace else [])]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=1800,
                              env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        if proc.returncode != 0:
            raise RuntimeError(f"[{mode}] measurement failed ({proc.returncode}); server log tail:\n"
                               f"{cluster.logs()[-3000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        with contextlib.suppress(OSError, StopIteration, AttributeError):
            status = Path(f"/proc/{cluster.proc.pid}/status").read_text()  # type: ignore[union-attr]
            rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
            result["server_rss_mb"] = round(int(rss.split()[1]) / 1024)
        code, _ = cluster.stop()
        result["server_exit"] = code
        result["leftovers_after_stop"] = cluster.leftovers()
    finally:
        if args.log_dir:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copy(cluster.log_path, args.log_dir / f"proxy-shift-{mode}.log")
        problems = cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
        if problems:
            print(f"[{mode}] cleanup problems: {problems}", file=sys.stderr)
    result["cleanup_problems"] = problems
    result["namespace_gone"] = not os.path.exists(f"/run/netns/{cluster.name}")
    result["loadavg_before"] = [round(x, 2) for x in load_before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def pct(values: list[float], q: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def summary_line(name: str, values: list[float | None]) -> str:
    xs = [v for v in values if v is not None]
    if not xs:
        return f"    {name:<22} -"
    return (f"    {name:<22} p50 {pct(xs, .5):7.1f}  p90 {pct(xs, .9):7.1f}  p99 {pct(xs, .99):7.1f}  "
            f"max {max(xs):7.1f}  ms  (n={len(xs)}{'' if len(xs) == len(values) else f' of {len(values)}'})")


def report(r: dict[str, Any]) -> None:
    ch = r["changes"]
    print(f"{r['mode']} (proxy {r['proxy_mode']}): {r['services_programmed']} Services programmed "
          f"({r['fillers']} fillers x 3 endpoints + shift + built-ins), {len(ch)} changes; "
          f"load average {r['loadavg_before'][0]} -> {r['loadavg_after'][0]} on {os.cpu_count()} CPUs")
    print(summary_line("shift (answer)", [c["shift_ms"] for c in ch]))
    print(summary_line("shift (conn opened)", [c["shift_opened_ms"] for c in ch]))
    print(summary_line("first new answer", [c["first_new_ms"] for c in ch]))
    print(summary_line("PATCH acked", [c["ack_ms"] for c in ch]))
    print(summary_line("watch event (bench)", [c["watch_event_ms"] for c in ch]))
    print(summary_line("proxy sync start", [c["sync_start_ms"] for c in ch]))
    print(summary_line("nft commit seen", [c["nft_commit_ms"] for c in ch]))
    print(summary_line("probe gap before shift", [c["resolution_ms"] for c in ch]))
    failures: dict[str, int] = {}
    for c in ch:
        for k, v in c["failures"].items():
            failures[k] = failures.get(k, 0) + v
    flaps = sum(c["old_after_first_new"] for c in ch)
    print(f"    probes {r['probes']} (~{r['probe_rate']}/s, {r['probes_skipped_inflight_limit']} ticks skipped at the "
          f"in-flight limit); failed during changes {failures or 0}, in the whole run {r['failures_total'] or 0}; "
          f"old-pod answers after the first new one: {flaps}; proxy syncs {r['proxy_syncs']}")
    shifts = [c["shift_ms"] for c in ch if c["shift_ms"] is not None]
    verdict = "met" if shifts and len(shifts) == len(ch) and pct(shifts, .99) < 50 else "NOT met"
    if "standalone" in r:
        sa = r["standalone"]
        print(f"    one-element commit on the live table from the bench process: `nft -f -` p50 {sa['nft_p50_ms']} ms "
              f"(p90 {sa['nft_p90_ms']}), libnftables in-process p50 {sa['libnftables_p50_ms']} ms "
              f"(p90 {sa['libnftables_p90_ms']}); spawning /bin/true p50 {sa['spawn_true_p50_ms']} ms; "
              f"server RSS {r.get('server_rss_mb', '?')} MB")
    print(f"    goal p99 < 50 ms at 1,000 Services: {verdict}"
          + ("" if r["fillers"] >= 1000 else f" (but only {r['fillers']} fillers)"))
    print(f"    server exit {r['server_exit']}; leftovers after stop {r['leftovers_after_stop'] or 'none'}; "
          f"namespace removed: {r['namespace_gone']}; cleanup problems {r['cleanup_problems'] or 'none'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="both", choices=["both", "netns", "loopback"])
    ap.add_argument("--services", type=int, default=1000, help="filler Services (3 endpoints each)")
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--interval", type=float, default=0.001, help="seconds between new probe connections")
    ap.add_argument("--inflight", type=int, default=16, help="probe connections open at most at once")
    ap.add_argument("--settle", type=float, default=0.2, help="seconds of traffic all on one pod = settled")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--log-dir", type=Path, default=None, help="keep the server logs here")
    ap.add_argument("--verbose-server", action="store_true", help="run the server with -v")
    ap.add_argument("--trace", action="store_true", help="print every probe around each change")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        with contextlib.suppress(ImportError):
            import uvloop
            uvloop.install()
        print(json.dumps(asyncio.run(inner(args))))
        return 0
    require("ip", "nft", root="the server runs in a network namespace made for the run")
    modes = ["netns", "loopback"] if args.mode == "both" else [args.mode]
    print(f"uptime before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    results = []
    for mode in modes:
        results.append(run_mode(mode, args))
        report(results[-1])
    print(f"uptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
