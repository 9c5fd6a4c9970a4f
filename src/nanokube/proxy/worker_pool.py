"""Userspace backend over N worker processes (worker_process.py), for throughput past one Python core.

This process keeps the plans; each worker gets its own frontend table over a pipe (a full table, or a delta of
the frontends that changed) and acks it; a sync returns only after every worker acked, so "programmed" and the
proxy's ready signal mean every worker serves it. Placement: a TCP frontend without session affinity is served
by every worker (SO_REUSEPORT; the kernel spreads connections). UDP frontends and affinity frontends are served
by one worker each (picked by a hash of the address), because SO_REUSEPORT would spread one client's packets or
connections over workers whose session/affinity state is not shared.

SO_REUSEPORT would let our listener silently share a port with someone else's SO_REUSEPORT socket, so before a
frontend is first opened this process probes its port with a plain bind; a taken port is logged, the frontend
is skipped (the others are served) and probed again on every later sync. A worker that dies fails the sync;
the next sync is then a full one, which starts a new worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import zlib
from collections.abc import Iterable
from typing import Any

import orjson

from nanokube.api.privileged_ports import PRIVILEGED_PORT_ERROR, listen_error
from nanokube.proxy.plan import ServicePortPlan
from nanokube.proxy.state import PlanChange
from nanokube.proxy.userspace import DEFAULT_TCP, FrontendKey, RouteSpec

log = logging.getLogger(__name__)

WORKERS_ENV = "NANOKUBE_PROXY_WORKERS"


def default_workers() -> int:
    """`NANOKUBE_PROXY_WORKERS` when set, else min(2, CPUs)."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        return max(1, int(env))
    return max(1, min(2, os.cpu_count() or 1))


def port_taken(key: FrontendKey) -> str:
    """"" when (ip, proto, port) can be bound by a plain (non-SO_REUSEPORT) socket right now, else the reason."""
    ip, proto, port = key
    if proto not in ("TCP", "UDP"):
        return ""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM)
    try:
        if proto == "TCP":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are no conflict
        sock.bind((ip, port))
        return ""
    except OSError as err:
        return listen_error(err)
    finally:
        sock.close()


class WorkerDied(RuntimeError):
    pass


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.table: dict[FrontendKey, RouteSpec] = {}
        self.seq = 0
        self.lock = asyncio.Lock()  # one request in flight on the pipe: a counters read may meet a sync

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def _exchange(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self.lock:
            self.seq += 1
            msg["seq"] = self.seq
            try:
                self.proc.stdin.write(orjson.dumps(msg) + b"\n")
                await self.proc.stdin.drain()
                line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            except (OSError, TimeoutError) as err:
                raise WorkerDied(f"proxy worker {self.proc.pid}: {type(err).__name__} {err}") from err
            if not line:
                raise WorkerDied(f"proxy worker {self.proc.pid} exited")
            ack: dict[str, Any] = orjson.loads(line)
            if ack.get("seq") != self.seq:
                raise WorkerDied(f"proxy worker {self.proc.pid} acked {ack.get('seq')}, expected {self.seq}")
            return ack

    async def counters(self, timeout: float) -> list[list[Any]]:
        return list((await self._exchange({"counters": True}, timeout)).get("counters") or ())

    async def request(self, full: bool, routes: dict[FrontendKey, RouteSpec], removed: list[FrontendKey],
                      timeout: float) -> list[str]:
        msg = {"full": full, "del": removed,
               "set": [[k[0], k[1], k[2], aff, eps, src] for k, (eps, aff, src) in routes.items()]}
        ack = await self._exchange(msg, timeout)
        if full:
            self.table = dict(routes)
        else:
            for key in removed:
                self.table.pop(key, None)
            self.table.update(routes)
        return list(ack.get("errors") or ())

    async def stop(self, grace: float = 2.0) -> None:
        if self.alive and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # EOF: the worker closes its listeners and exits
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                pass
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()


class WorkerPoolBackend:
    """Backend (see proxier.Backend) that serves the plans from `workers` processes."""

    def __init__(self, *, workers: int = 2, udp_idle_timeout: float = 30.0, tcp: str = DEFAULT_TCP,
                 kinds: tuple[str, ...] | None = None, ack_timeout: float = 20.0) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.n = workers
        self.udp_idle_timeout = udp_idle_timeout
        self.tcp = tcp
        self.kinds = kinds
        self.ack_timeout = ack_timeout
        self.workers: list[_Worker | None] = [None] * workers
        self.routes: dict[str, dict[FrontendKey, RouteSpec]] = {}  # by Service key
        self.wanted: dict[FrontendKey, RouteSpec] = {}  # every frontend, merged
        self.blocked: set[FrontendKey] = set()  # port taken by someone else; probed again on every sync
        self.unserved: dict[FrontendKey, str] = {}  # the blocked ones, with why (shown in the proxy's /status)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w is not None and w.alive]

    async def start(self) -> None:
        """Start the worker processes now (the first full sync would otherwise), so that their interpreters
        boot while the proxy's informers make their first lists."""
        await self._start_missing()

    # -- Backend --------------------------------------------------------------------------------------------
    async def full_sync(self, plans: dict[str, tuple[ServicePortPlan, ...]]) -> None:
        await self._start_missing()
        self.routes = {key: self._routes(p) for key, p in plans.items()}
        self.wanted = {k: spec for routes in self.routes.values() for k, spec in routes.items()}
        await self._send(self.wanted.keys(), full=True)

    async def apply(self, changes: dict[str, PlanChange]) -> None:
        if any(w is None or not w.alive for w in self.workers):
            raise WorkerDied("a proxy worker is gone; the next sync is a full one and restarts it")
        touched: set[FrontendKey] = set(self.blocked)
        for key, (_, new) in changes.items():
            old_routes = self.routes.pop(key, {})
            new_routes = self._routes(new)
            if new_routes:
                self.routes[key] = new_routes
            for k in old_routes:
                self.wanted.pop(k, None)
            self.wanted.update(new_routes)
            touched |= old_routes.keys() | new_routes.keys()
        await self._send(touched, full=False)

    async def intact(self) -> bool:
        """False when a worker died: the full sync that follows starts a new one, even if nothing changes."""
        return all(w is not None and w.alive for w in self.workers)

    async def counters(self) -> dict[FrontendKey, dict[tuple[str, int], int]]:
        """New connections per frontend and endpoint, summed over the workers (each counts what it accepted)."""
        live = [w for w in self.workers if w is not None and w.alive]
        replies = await asyncio.gather(*(w.counters(self.ack_timeout) for w in live), return_exceptions=True)
        out: dict[FrontendKey, dict[tuple[str, int], int]] = {}
        for rows in replies:
            if isinstance(rows, BaseException):
                continue  # a dying worker: the sync that follows restarts it
            for ip, proto, port, ep_ip, ep_port, n in rows:
                per = out.setdefault((ip, proto, port), {})
                per[(ep_ip, ep_port)] = per.get((ep_ip, ep_port), 0) + n
        return out

    async def stop(self) -> None:
        workers = [w for w in self.workers if w is not None]
        self.workers = [None] * self.n
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)

    # -- placement and delivery -----------------------------------------------------------------------------
    def _routes(self, plans: tuple[ServicePortPlan, ...]) -> dict[FrontendKey, RouteSpec]:
        return {fe.key: ([ep.addr for ep in fe.endpoints], fe.affinity_timeout, fe.source_ranges)
                for plan in plans for fe in plan.frontends if self.kinds is None or fe.kind in self.kinds}

    def _placement(self, key: FrontendKey, spec: RouteSpec) -> range | tuple[int, ...]:
        if spec[0] and not any(w is not None and w.table.get(key, ((), 0, ()))[0] for w in self.workers):
            reason = port_taken(key)  # about to be opened for the first time: is it someone else's?
            if reason:
                if key not in self.blocked and reason != PRIVILEGED_PORT_ERROR:  # the server said so once
                    log.warning("userspace proxy: %s:%d/%s is taken (%s); serving the other frontends and "
                                "retrying on every sync", key[0], key[2], key[1], reason)
                self.blocked.add(key)
                self.unserved[key] = reason
                return ()
        self.blocked.discard(key)
        self.unserved.pop(key, None)
        if key[1] == "TCP" and not spec[1]:
            return range(self.n)
        return (zlib.crc32(f"{key[0]}/{key[1]}/{key[2]}".encode()) % self.n,)

    async def _send(self, keys: Iterable[FrontendKey], *, full: bool) -> None:
        sets: list[dict[FrontendKey, RouteSpec]] = [{} for _ in range(self.n)]
        dels: list[list[FrontendKey]] = [[] for _ in range(self.n)]
        for key in keys:
            spec = self.wanted.get(key)
            if spec is None:
                self.blocked.discard(key)
                self.unserved.pop(key, None)
            serving = self._placement(key, spec) if spec is not None else ()
            for i, worker in enumerate(self.workers):
                assert worker is not None
                if i in serving:
                    if full or worker.table.get(key) != spec:
                        sets[i][key] = spec  # type: ignore[assignment]
                elif key in worker.table and not full:
                    dels[i].append(key)
        jobs = [(w, sets[i], dels[i]) for i, w in enumerate(self.workers) if full or sets[i] or dels[i]]
        results = await asyncio.gather(*(w.request(full, s, d, self.ack_timeout)  # type: ignore[union-attr]
                                         for w, s, d in jobs), return_exceptions=True)
        failure = None
        for (worker, _, _), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                await worker.stop(grace=0)  # type: ignore[union-attr]
            elif result:
                log.warning("userspace proxy worker %d: %s", worker.proc.pid, "; ".join(result))  # type: ignore
        if failure is not None:
            raise failure

    async def _start_missing(self) -> None:
        for i, worker in enumerate(self.workers):
            if worker is not None and not worker.alive:
                await worker.stop(grace=0)
                worker = self.workers[i] = None
            if worker is None:
                self.workers[i] = _Worker(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "nanokube.proxy.worker_process", "--parent", str(os.getpid()),
                    "--udp-idle-timeout", str(self.udp_idle_timeout), "--tcp", self.tcp,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20))
