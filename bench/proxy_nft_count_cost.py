"""The kernel's cost of counting connections per endpoint (netns mode), isolated: CPU per new connection through
nanokube's table with the counters on and off, alternating in one run.

proxy_datapath.py measures the same thing end to end (wrk through a lab of namespaces), but on a shared, loaded
machine its runs differ by more than the 3 % it should resolve. Here one process does everything on one CPU and
is charged for it: it connects to a ClusterIP whose three endpoints are local addresses in the same network
namespace, so the whole handshake (both directions, every netfilter hook, the DNAT, and the counting lookup)
runs in its own syscalls' softirq; accepts; closes both ends (RST, so no TIME_WAIT piles up). The measure is
the thread's CPU time per connection (CLOCK_THREAD_CPUTIME_ID: the scheduler's runtime, exact, and without
IRQ time accounting it includes the softirq work done in the thread's own syscalls), which other processes' load
does not add to (wall time would). Counters on/off = the real NftablesBackend's full sync with NetConfig.counters True/False;
blocks alternate (the order flips every round), conntrack is flushed before each block.

A fresh network namespace `nkc-<random>` holds everything (lo with the endpoint and client addresses, the route to the service CIDR, table ip nanokube) and is deleted at the end. Run as root:

    PYTHONPATH=src python3 bench/proxy_nft_count_cost.py [--connections 20000] [--rounds 8] [--services 1000]
                                                         [--amplify 20]

On a loaded machine the on/off difference (a few hundred ns at most, of ~60 us) is below the blocks' noise, so a
third variant, `on-x20`, repeats the counting rules 20 times in chain count-connections (diagnostic): the
difference to `on`, divided by 19, is the cost of one counting pass, measured well above the noise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import resource
import secrets
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time

from bench_tools import require

VIP, PORT = "10.96.0.60", 80
ENDPOINTS = ["10.244.0.11", "10.244.0.12", "10.244.0.13"]
CLIENT = "10.244.1.1"  # not an endpoint: no hairpin masquerade
TARGET_PORT = 8080
LINGER_RST = struct.pack("ii", 1, 0)


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


def connections(listener: socket.socket, n: int) -> None:
    for _ in range(n):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        c.bind((CLIENT, 0))
        c.connect((VIP, PORT))  # local: the handshake is done when connect returns
        s, _ = listener.accept()
        s.close()
        c.close()


def cpu() -> tuple[float, float]:
    """(this thread's CPU time: the scheduler's exact runtime, which on this kernel includes the softirq work
    done on the way out of its syscalls; sys time, sampled at the tick, so only indicative)."""
    return time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD).ru_stime


async def inner(args: argparse.Namespace) -> None:
    """Inside the namespace: program the table, then measure."""
    from nanokube.proxy.commands import Commands
    from nanokube.proxy.nftables import NftablesBackend
    from nanokube.proxy.nftrules import NetConfig, base_ruleset
    from nanokube.proxy.proxier import Proxier
    from nanokube.proxy.state import ProxyState
    from proxy_datapath import other_services, service_objects

    on_cfg = NetConfig(pod_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12", lb_pool="", counters=True)
    backend = NftablesBackend(cfg=on_cfg, hostnet=None, commands=Commands(None))
    proxier = Proxier(state=ProxyState(node_name="bench", nodeport_ips=()), backend=backend)
    proxier.on_services_synced()
    proxier.on_endpointslices_synced()
    for svc, eps in [service_objects("web", VIP, PORT, ENDPOINTS, TARGET_PORT), *other_services(args.services)]:
        proxier.on_service_add(svc)
        proxier.on_endpointslice_add(eps)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", TARGET_PORT))
    listener.listen(4096)
    variants = ["on", "off"] + ([f"on-x{args.amplify}"] if args.amplify > 1 else [])
    per: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    checks: list[str] = []
    try:
        for r in range(args.rounds):
            for variant in (variants if r % 2 == 0 else variants[::-1]):
                backend.cfg = dataclasses.replace(on_cfg, counters=variant != "off")
                proxier.need_full = True
                await proxier.sync()
                if variant.startswith("on-x"):
                    await backend.commands.nft(amplified(base_ruleset(backend.cfg), args.amplify))
                connections(listener, 300)  # warm caches and the conntrack slab
                if shutil.which("conntrack"):
                    sh("conntrack", "-F", check=False)
                c0, s0 = cpu()
                connections(listener, args.connections)
                c1, s1 = cpu()
                per[variant].append(((c1 - c0) / args.connections * 1e6, (s1 - s0) / args.connections * 1e6))
                if variant != "off":  # the amplified chain counts every connection `amplify` times
                    backend.counter_reader.forget()
                    counted = sum((await backend.counters()).get((VIP, "TCP", PORT), {}).values())
                    checks.append(f"{variant} {counted}/{args.connections + 300}")
                print(f"round {r + 1} counters {variant:6}: {per[variant][-1][0]:.2f} us CPU, "
                      f"{per[variant][-1][1]:.2f} us sys per connection", file=sys.stderr, flush=True)
    finally:
        listener.close()
        await backend.stop()
    print(f"{args.connections:,} connections per block, {args.rounds} rounds (variants alternating, order flipped "
          f"every round), {args.services} other Services in the table; {os.cpu_count()} CPUs")
    print("| counters | CPU us / connection (median) | sys us / connection (median, tick-sampled) | blocks (CPU us) |")
    print("|---|---:|---:|---|")
    for variant in variants:
        rows = per[variant]
        print(f"| {variant} | {statistics.median(r[0] for r in rows):.2f} | "
              f"{statistics.median(r[1] for r in rows):.2f} | {' / '.join(f'{r[0]:.2f}' for r in rows)} |")
    ratios = [a[0] / b[0] for a, b in zip(per["on"], per["off"], strict=True)]
    off = statistics.median(r[0] for r in per["off"])
    print(f"\non/off CPU per connection: ratio of medians {statistics.median(r[0] for r in per['on']) / off:.3f}; "
          f"median of per-round ratios {statistics.median(ratios):.3f} ({' / '.join(f'{x:.3f}' for x in ratios)})")
    diff = statistics.median(a[0] - b[0] for a, b in zip(per["on"], per["off"], strict=True))
    print(f"median per-round difference on - off: {diff * 1000:.0f} ns per connection")
    if args.amplify > 1:
        extra = statistics.median(a[0] - b[0] for a, b in zip(per[variants[2]], per["on"], strict=True))
        one = extra / (args.amplify - 1)
        print(f"amplified: the counting lookups {args.amplify}x per pass cost {extra * 1000:.0f} ns more per connection "
              f"than 1x (median per-round difference), so one pass costs ~{one * 1000:.0f} ns per connection = "
              f"{one / off * 100:.2f} % of the {off:.2f} us the connection costs with counters off")
    print(f"kernel counted (counted/connections made, incl. 300 warm-up): {', '.join(checks)}")


def amplified(ruleset: list[str], times: int) -> str:
    """Diagnostic: chain count-connections with its counting rules repeated `times` times (the same lookups,
    each counting again), to measure one pass's cost well above the noise."""
    from nanokube.proxy.nftrules import FAMILY, TABLE

    prefix = f"add rule {FAMILY} {TABLE} count-connections "
    rules = [line for line in ruleset if line.startswith(prefix)]
    skip, counting, goto = rules[0], rules[1:-1], rules[-1]
    return "\n".join([f"flush chain {FAMILY} {TABLE} count-connections", skip, *counting * times, goto]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--services", type=int, default=1000, help="other Services x 3 endpoints in the table")
    parser.add_argument("--amplify", type=int, default=20,
                        help="also measure the counting rules repeated this many times (0: no)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        asyncio.run(inner(args))
        return
    require("ip", "nft", root="it makes a network namespace")
    ns = f"nkc-{secrets.token_hex(3)}"
    print(f"uptime before: {sh('uptime').strip()}", flush=True)
    try:
        sh("ip", "netns", "add", ns)
        ip = ["ip", "-n", ns]
        sh(*ip, "link", "set", "lo", "up")
        for addr in (*ENDPOINTS, CLIENT):
            sh(*ip, "addr", "add", f"{addr}/32", "dev", "lo")
        sh(*ip, "route", "add", "10.96.0.0/12", "dev", "lo")  # any route: the DNAT makes it local
        argv = [sys.executable, os.path.abspath(__file__), "--inner", "--connections", str(args.connections),
                "--rounds", str(args.rounds), "--services", str(args.services), "--amplify", str(args.amplify)]
        # one CPU: the whole path is charged to one process on one core, as in a pinned measurement
        proc = subprocess.run(["ip", "netns", "exec", ns, "taskset", "-c", "0", *argv], check=False)
        if proc.returncode:
            raise SystemExit(proc.returncode)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            for pid in sh("ip", "netns", "pids", ns, check=False).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
            sh("ip", "netns", "delete", ns, check=False)
        print(f"uptime after: {sh('uptime').strip()}", flush=True)


if __name__ == "__main__":
    main()
