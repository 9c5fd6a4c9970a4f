"""One userspace proxy worker process: reads frontend tables from stdin, serves them, acks on stdout.

Started by `WorkerPoolBackend` (worker_pool.py) as `python -m nanokube.proxy.worker_process --parent PID ...`. Protocol, one
JSON object per line each way:

    in:  {"seq": 7, "full": true|false,
          "set": [[ip, proto, port, affinity_timeout, [[ep_ip, ep_port], ...], [source_cidr, ...]], ...],
          "del": [[ip, proto, port], ...]}
    out: {"seq": 7, "errors": ["127.0.0.1:30080/TCP: Address already in use", ...]}

    in:  {"seq": 8, "counters": true}
    out: {"seq": 8, "counters": [[ip, proto, port, ep_ip, ep_port, new_connections], ...]}

"full" replaces the whole table (frontends not in "set" are closed); otherwise "set" and "del" are a delta.
TCP listeners (and UDP ones) use SO_REUSEPORT so that every worker can hold the same port. The worker exits when
its parent dies (PR_SET_PDEATHSIG, and EOF on stdin as the portable backstop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from typing import Any

import orjson

from nanokube.proxy.userspace import DEFAULT_TCP, FrontendKey, RouteSpec, UserspaceBackend

log = logging.getLogger("nanokube.proxy.worker_process")
PR_SET_PDEATHSIG = 1
RETRY_INTERVAL = 2.0  # seconds between retries of frontends whose port was taken


def die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def parse(msg: dict[str, Any]) -> tuple[dict[FrontendKey, RouteSpec], list[FrontendKey]]:
    routes = {(ip, proto, port): ([(e[0], e[1]) for e in eps], aff, tuple(src))
              for ip, proto, port, aff, eps, src in msg["set"]}
    return routes, [(ip, proto, port) for ip, proto, port in msg.get("del", ())]


async def serve(backend: UserspaceBackend) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    retry: asyncio.TimerHandle | None = None
    retry_tasks: set[asyncio.Task[Any]] = set()
    lock = asyncio.Lock()  # a retry and a table update must not open the same listener twice

    def retry_failed() -> None:
        nonlocal retry
        retry = None
        task = loop.create_task(reconcile({}))
        retry_tasks.add(task)
        task.add_done_callback(retry_tasks.discard)

    async def reconcile(routes: dict[FrontendKey, RouteSpec]) -> list[str]:
        nonlocal retry
        async with lock:
            errors = await backend.reconcile_routes(routes)
        if backend.failed and retry is None:
            retry = loop.call_later(RETRY_INTERVAL, retry_failed)
        return errors

    try:
        while line := await reader.readline():
            msg = orjson.loads(line)
            if msg.get("counters"):
                counts = await backend.counters()
                rows = [[*key, *ep, n] for key, eps in counts.items() for ep, n in eps.items()]
                os.write(1, orjson.dumps({"seq": msg["seq"], "counters": rows}) + b"\n")
                continue
            routes, removed = parse(msg)
            if msg.get("full"):
                removed = [k for k in backend.listeners if k not in routes]
            async with lock:
                backend.remove(removed)
            errors = await reconcile(routes)
            os.write(1, orjson.dumps({"seq": msg["seq"], "errors": errors}) + b"\n")
    finally:
        if retry is not None:
            retry.cancel()
        await backend.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nanokube.proxy.worker_process")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--udp-idle-timeout", type=float, default=30.0)
    parser.add_argument("--tcp", default=DEFAULT_TCP)
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C goes to the parent, which stops us in order
    logging.basicConfig(level=logging.WARNING, format=f"proxy-worker[{os.getpid()}] %(levelname)s %(message)s")
    backend = UserspaceBackend(udp_idle_timeout=args.udp_idle_timeout, tcp=args.tcp, reuse_port=True)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(backend))
    else:
        uvloop.run(serve(backend))


if __name__ == "__main__":
    main()
