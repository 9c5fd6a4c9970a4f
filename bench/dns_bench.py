"""Cluster DNS vs dnsmasq, side by side in one run, with dnsperf (Debian package dnsperf).

    python bench/dns_bench.py [--services 10000] [--endpoints 10] [--seconds 10] [--runs 3]
    python bench/dns_bench.py --fuzz 60      # 60 s of malformed packets against a loaded server
    python bench/dns_bench.py --baseline /tmp/base/src   # also an older checkout's server, same runs
    python bench/dns_bench.py --hot-path --baseline /tmp/base/src   # CPU per memo hit, in-process, both trees

With --baseline, a third server runs the DNS code of another source tree (e.g. `git archive main src | tar -x
-C /tmp/base`), queried in turn with the other two in every run: the before/after ratio of a change.

Our server runs in its own process (uvloop) with N Services x M endpoints fed into its cache as the API would
send them; dnsmasq answers the same N names from a hosts file. Each run asks every service name once in turn
(the query file has one line per service). Reported: queries/s (dnsperf, 100 queries in flight), average
latency, p50/p99 latency from a `dnsperf -v` run, and the RSS of our process after loading and after the runs.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_tools import require, which
from nanokube.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def cluster_ip(i: int) -> str:
    return f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}"


def endpoint_ip(i: int, j: int) -> str:
    n = i * 16 + j
    return f"10.{128 + n // 65536}.{(n // 256) % 256}.{n % 256}"


def service_name(i: int) -> tuple[str, str]:
    return f"ns-{i % 100}", f"svc-{i}"


def objects(services: int, endpoints: int):  # type: ignore[no-untyped-def]
    for k in range(100):
        yield {"kind": "Namespace", "metadata": {"name": f"ns-{k}", "resourceVersion": "1"}}
    for i in range(services):
        ns, name = service_name(i)
        yield {"kind": "Service", "apiVersion": "v1",
               "metadata": {"name": name, "namespace": ns, "resourceVersion": str(i + 2), "uid": f"u{i}",
                            "labels": {"app": name}},
               "spec": {"type": "ClusterIP", "clusterIP": cluster_ip(i), "clusterIPs": [cluster_ip(i)],
                        "ipFamilies": ["IPv4"], "selector": {"app": name},
                        "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]}}
        yield {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
               "metadata": {"name": f"{name}-abcde", "namespace": ns, "resourceVersion": str(i + 2),
                            "labels": {"kubernetes.io/service-name": name}},
               "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
               "endpoints": [{"addresses": [endpoint_ip(i, j)], "conditions": {"ready": True, "serving": True,
                                                                              "terminating": False},
                              "nodeName": "node-1",
                              "targetRef": {"kind": "Pod", "namespace": ns, "name": f"{name}-{j}"}}
                             for j in range(endpoints)]}


# -- our server, in a child process ----------------------------------------------------------------------
def serve_child(port: int, services: int, endpoints: int) -> None:
    import uvloop

    from nanokube.dns import DnsSettings, build_dns
    from nanokube.dns.run import serve

    async def main() -> None:
        extra = {"metrics_port": 0} if "metrics_port" in DnsSettings.__dataclass_fields__ else {}
        parts = build_dns(DnsSettings(listen=[("127.0.0.1", port)], upstreams=[], **extra))
        started = time.perf_counter()
        for obj in objects(services, endpoints):
            parts.cache.add(obj)
        parts.cache.mark_synced()
        print(f"loaded {services} services in {time.perf_counter() - started:.2f}s", flush=True)
        task = asyncio.create_task(serve(parts, check_loops=False))
        await parts.server.started.wait()
        print("READY", flush=True)
        await task

    uvloop.run(main())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_ours(port: int, services: int, endpoints: int, src: Path = ROOT / "src",
               label: str = "ours") -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(services), str(endpoints)],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        print(f"  {label}:", line.strip())
        if line.startswith("READY"):
            return proc
    raise RuntimeError("our DNS server did not start")


def start_dnsmasq(port: int, hosts: Path, workdir: Path) -> subprocess.Popen[bytes]:
    exe = which("dnsmasq") or "dnsmasq"
    cmd = [exe, "--no-daemon", "-C", "/dev/null", f"--port={port}", f"--addn-hosts={hosts}", "--no-hosts",
           "--no-resolv", "--listen-address=127.0.0.1", "--bind-interfaces", f"--pid-file={workdir}/dnsmasq.pid",
           "--cache-size=10000"]
    if os.geteuid() == 0:
        cmd += ["--user=root", "--group=root"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_answering(port)
    return proc


def wait_answering(port: int) -> None:
    import dns.message
    import dns.query

    q = dns.message.make_query("svc-0.ns-0.svc.cluster.local", "A")
    for _ in range(100):
        try:
            dns.query.udp(q, "127.0.0.1", port=port, timeout=0.2)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def dnsperf(port: int, queries: Path, seconds: int, verbose: bool = False) -> dict[str, float]:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds)]
    if verbose:
        cmd.append("-v")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = {"qps": float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
              "avg_ms": float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1000,  # type: ignore[union-attr]
              "lost": float(re.search(r"Queries lost:\s+(\d+)", out).group(1))}  # type: ignore[union-attr]
    if verbose:
        lat = sorted(float(m) * 1000 for m in re.findall(r"^> \S+ .* ([\d.]+)$", out, re.M))
        if lat:
            result["p50_ms"] = lat[len(lat) // 2]
            result["p99_ms"] = lat[int(len(lat) * 0.99)]
            result["samples"] = len(lat)
    return result


def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="nk-dnsbench-"))
    hosts = workdir / "hosts"
    queries = workdir / "queries"
    with hosts.open("w") as h, queries.open("w") as q:
        for i in range(args.services):
            ns, name = service_name(i)
            fqdn = f"{name}.{ns}.svc.cluster.local"
            h.write(f"{cluster_ip(i)} {fqdn}\n")
            q.write(f"{fqdn} A\n")
    ours_port, theirs_port, base_port = free_port(), free_port(), free_port()
    print(f"{args.services} services x {args.endpoints} endpoints; dnsperf {args.seconds}s x {args.runs} runs")
    ours = start_ours(ours_port, args.services, args.endpoints)
    servers = [("nanokube", ours_port)]
    base = None
    if args.baseline:
        base = start_ours(base_port, args.services, args.endpoints, Path(args.baseline).resolve(), "baseline")
        servers.append(("baseline", base_port))
    theirs = start_dnsmasq(theirs_port, hosts, workdir)
    servers.append(("dnsmasq", theirs_port))
    try:
        print(f"  ours: RSS after load {rss_mb(ours.pid):.1f} MB")
        for _, port in servers:
            dnsperf(port, queries, 2)  # warm-up: first answers fill the per-query memo
        results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in servers}
        for run in range(args.runs):
            for label, port in (servers if run % 2 == 0 else servers[::-1]):  # no server always goes first
                r = dnsperf(port, queries, args.seconds)
                results[label].append(r)
                print(f"  run {run + 1} {label:9s} {r['qps']:>10,.0f} qps  avg {r['avg_ms']:.3f} ms  lost {r['lost']:.0f}")
        latency = {label: dnsperf(port, queries, 5, verbose=True) for label, port in servers}
        rss_after = rss_mb(ours.pid)
        rss_base = rss_mb(base.pid) if base is not None else 0.0
    finally:
        for proc in (ours, theirs, base):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print("| server | qps (median of runs) | runs | avg latency ms | p50 ms | p99 ms (dnsperf -v run) |")
    print("|---|---:|---|---:|---:|---:|")
    med = {}
    for label, _ in servers:
        qps = [r["qps"] for r in results[label]]
        med[label] = statistics.median(qps)
        avg = statistics.median(r["avg_ms"] for r in results[label])
        lat = latency[label]
        print(f"| {label} | {med[label]:,.0f} | {' / '.join(f'{x:,.0f}' for x in qps)} | {avg:.3f} | "
              f"{lat.get('p50_ms', float('nan')):.3f} | {lat.get('p99_ms', float('nan')):.3f} |")
    print(f"\nratio nanokube/dnsmasq: {med['nanokube'] / med['dnsmasq']:.2f}  (goal >= 0.9)")
    if base is not None:
        per_run = [a["qps"] / b["qps"] for a, b in zip(results["nanokube"], results["baseline"], strict=True)]
        print(f"ratio nanokube/baseline: {med['nanokube'] / med['baseline']:.2f} (median of medians); per run "
              f"{' / '.join(f'{x:.2f}' for x in per_run)}; baseline RSS {rss_base:.1f} MB")
    print(f"nanokube RSS with {args.services} services x {args.endpoints} endpoints: {rss_after:.1f} MB (goal < 60)")


# -- the UDP memo-hit path alone, in-process ---------------------------------------------------------------
def hot_path_child() -> None:
    """ns of Python per answered memo hit (UdpProtocol.datagram_received with a transport that drops the
    datagram): the best of 7 rounds of 200,000, so a loaded machine inflates it less than a qps figure."""
    import dns.message

    from nanokube.dns import DnsSettings, build_dns
    from nanokube.dns.server import UdpProtocol

    class Drop:
        def sendto(self, data: bytes, addr: object) -> None:
            pass

    extra = {"metrics_port": None} if "metrics_port" in DnsSettings.__dataclass_fields__ else {}
    parts = build_dns(DnsSettings(listen=[("127.0.0.1", 53)], upstreams=[], **extra))
    for obj in objects(100, 10):
        parts.cache.add(obj)
    parts.cache.mark_synced()
    proto = UdpProtocol(parts.engine)
    proto.transport = Drop()  # type: ignore[assignment]
    query = dns.message.make_query("svc-7.ns-7.svc.cluster.local", "A").to_wire()
    addr = ("127.0.0.1", 1)
    proto.datagram_received(query, addr)
    assert parts.engine.memo, "the query was not memoized"
    receive = proto.datagram_received
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(200_000):
            receive(query, addr)
        best = min(best, (time.perf_counter() - started) / 200_000)
    print(f"{best * 1e9:.0f}")


def hot_path(baseline: str) -> None:
    trees = [("nanokube", ROOT / "src")] + ([("baseline", Path(baseline).resolve())] if baseline else [])
    results: dict[str, list[int]] = {label: [] for label, _ in trees}
    for _ in range(3):  # alternate the trees: both see the same load
        for label, src in trees:
            out = subprocess.run([sys.executable, __file__, "--hot-path-child"], capture_output=True, text=True,
                                 check=True, env=dict(os.environ, PYTHONPATH=str(src)))
            results[label].append(int(out.stdout.strip()))
    for label, values in results.items():
        print(f"{label:9s} ns per memo hit: {' / '.join(map(str, values))} (best {min(values)})")
    if baseline:
        print(f"nanokube - baseline: {min(results['nanokube']) - min(results['baseline']):+d} ns per memo hit")


# -- malformed-packet fuzz --------------------------------------------------------------------------------
def fuzz_packets(rng: random.Random) -> bytes:
    import struct

    kind = rng.randrange(6)
    qid = rng.randrange(65536)
    good = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\x05svc-1\x04ns-1\x03svc\x07cluster\x05local\x00" \
        + b"\x00\x01\x00\x01"
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 600))
    if kind == 1:
        return good[:rng.randrange(len(good))]
    if kind == 2:  # compression loop in the question
        return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
    if kind == 3:  # huge counts
        return struct.pack("!HHHHHH", qid, 0x0100, 65535, 65535, 65535, 65535) + good[12:]
    if kind == 4:  # random bit flips in a good query
        b = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    return good + rng.randbytes(rng.randrange(1, 64))  # trailing garbage / bogus EDNS


def fuzz(seconds: float) -> None:
    import dns.message
    import dns.query

    port = free_port()
    ours = start_ours(port, 1000, 10)
    rng = random.Random(1)
    sent = answered_checks = 0
    rss_start = rss_mb(ours.pid)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for _ in range(500):
                    s.sendto(fuzz_packets(rng), ("127.0.0.1", port))
                    sent += 1
                    try:
                        while True:
                            s.recv(65535)
                    except BlockingIOError:
                        pass
                r = dns.query.udp(dns.message.make_query("svc-7.ns-7.svc.cluster.local", "A"), "127.0.0.1",
                                  port=port, timeout=2)
                assert r.answer, "server stopped answering"
                answered_checks += 1
        rss_end = rss_mb(ours.pid)
    finally:
        ours.terminate()
        ours.wait(10)
    print(f"fuzz: {sent:,} malformed packets in {seconds:.0f}s, {answered_checks} valid queries all answered; "
          f"RSS {rss_start:.1f} -> {rss_end:.1f} MB")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--hot-path-child":
        hot_path_child()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fuzz", type=float, default=0, help="run the malformed-packet fuzz for this many seconds")
    parser.add_argument("--baseline", default="", help="a source tree (its src/) whose DNS also runs, for before/after")
    parser.add_argument("--hot-path", action="store_true", help="only the in-process CPU cost of a memo hit")
    args = parser.parse_args()
    if args.hot_path:
        hot_path(args.baseline)
    elif args.fuzz:
        fuzz(args.fuzz)
    else:
        require("dnsperf", "dnsmasq")
        bench(args)


if __name__ == "__main__":
    main()
