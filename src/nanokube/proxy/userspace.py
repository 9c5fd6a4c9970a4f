"""Userspace backend (loopback mode): a listener per frontend, opened and closed as Services change.

A frontend with endpoints listens; one without endpoints does not, so a client is refused at once
(connection refused for TCP, ICMP port unreachable for UDP) instead of hanging. Endpoint changes update
the frontend's Route in place, so they apply to the next connection; established TCP connections run on.
UDP sessions to a removed endpoint are closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import select
from dataclasses import dataclass

from nanokube.api.privileged_ports import PRIVILEGED_PORT_ERROR, listen_error
from nanokube.proxy.epoll_relay import Poller, TcpEpollListener
from nanokube.proxy.forward import Addr, Route, UdpListener, tcp_factory
from nanokube.proxy.plan import Frontend, ServicePortPlan
from nanokube.proxy.state import PlanChange

log = logging.getLogger(__name__)

FrontendKey = tuple[str, str, int]
# (endpoints, affinity timeout in seconds (0 = none), loadBalancerSourceRanges of an LB address (() = anyone))
RouteSpec = tuple[list[Addr], int, tuple[str, ...]]


@dataclass
class _Listener:
    route: Route
    server: asyncio.AbstractServer | TcpEpollListener | None = None
    udp: UdpListener | None = None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.udp is not None:
            self.udp.close()
            self.udp = None

    @property
    def open(self) -> bool:
        return self.server is not None or self.udp is not None


TCP_MODES = ("epoll", "protocol")
DEFAULT_TCP = "epoll" if hasattr(select, "epoll") else "protocol"


class UserspaceBackend:
    """`tcp` picks the TCP data path: "epoll" (epoll_relay.py: every socket in one private epoll set, one loop
    callback per batch of events; Linux, the default there) or "protocol" (asyncio Protocols, forward.py; any OS).
    bench/RESULTS-proxy.md has the measurements behind the choice."""

    def __init__(self, *, udp_idle_timeout: float = 30.0, backlog: int = 4096, tcp: str = DEFAULT_TCP,
                 reuse_port: bool = False, kinds: tuple[str, ...] | None = None) -> None:
        if tcp not in TCP_MODES:
            raise ValueError(f"tcp must be one of {', '.join(TCP_MODES)}")
        if tcp == "epoll" and not hasattr(select, "epoll"):
            tcp = "protocol"
        self.udp_idle_timeout = udp_idle_timeout
        self.backlog = backlog
        self.tcp = tcp
        self.reuse_port = reuse_port
        # Only these frontend kinds ("cluster", "external", "nodeport"); None = all. A second node in loopback
        # mode serves only its node ports: every ClusterIP and LB address is already the first node's listener.
        self.kinds = kinds
        self.listeners: dict[FrontendKey, _Listener] = {}
        self.failed: set[FrontendKey] = set()  # wanted open, but the port was taken; retried on every reconcile
        self.unserved: dict[FrontendKey, str] = {}  # the failed ones, with why (shown in the proxy's /status)
        self.frontends: dict[str, dict[FrontendKey, Frontend]] = {}  # by Service key
        self.poller: Poller | None = None

    async def full_sync(self, plans: dict[str, tuple[ServicePortPlan, ...]]) -> None:
        self.frontends = {key: self._frontends(p) for key, p in plans.items()}
        wanted = {k: fe for fes in self.frontends.values() for k, fe in fes.items()}
        self.remove([k for k in self.listeners if k not in wanted])
        await self._reconcile(wanted)

    async def apply(self, changes: dict[str, PlanChange]) -> None:
        wanted: dict[FrontendKey, Frontend] = {}
        for key, (old, new) in changes.items():
            fes = self._frontends(new)
            self.remove([k for k in self._frontends(old) if k not in fes])
            if fes:
                self.frontends[key] = fes
            else:
                self.frontends.pop(key, None)
            wanted.update(fes)
        await self._reconcile(wanted)

    def _frontends(self, plans: tuple[ServicePortPlan, ...]) -> dict[FrontendKey, Frontend]:
        return {fe.key: fe for plan in plans for fe in plan.frontends if self.kinds is None or fe.kind in self.kinds}

    async def _reconcile(self, wanted: dict[FrontendKey, Frontend]) -> None:
        await self.reconcile_routes({key: ([ep.addr for ep in fe.endpoints], fe.affinity_timeout, fe.source_ranges)
                                     for key, fe in wanted.items()})

    async def reconcile_routes(self, wanted: dict[FrontendKey, RouteSpec]) -> list[str]:
        """Create/update/open/close the listeners of `wanted` (others untouched); returns the listen errors.

        A frontend that cannot listen (its port is taken) is logged and retried on every later reconcile; it
        never stops the other frontends from being served."""
        errors: list[str] = []
        for key in [k for k in self.failed if k not in wanted]:
            listener = self.listeners.get(key)
            if listener is None or listener.open or not listener.route.endpoints:
                self._served(key)
            elif await self._try_listen(key, listener, errors):
                log.info("userspace proxy: now listening on %s:%d/%s", key[0], key[2], key[1])
        for key, (endpoints, affinity_timeout, source_ranges) in wanted.items():
            listener = self.listeners.get(key)
            if listener is None:
                listener = self.listeners[key] = _Listener(Route(endpoints, affinity_timeout, source_ranges))
            else:
                listener.route.update(endpoints, affinity_timeout, source_ranges)
                if listener.udp is not None:
                    listener.udp.forget_endpoints(set(endpoints))
            if endpoints and not listener.open:
                await self._try_listen(key, listener, errors)
            elif not endpoints:
                self._served(key)
                if listener.open:
                    listener.close()
        if errors:
            log.warning("userspace proxy cannot listen on %s (retried on the next sync)", "; ".join(errors))
        return errors

    def remove(self, keys: list[FrontendKey]) -> None:
        for key in keys:
            listener = self.listeners.pop(key, None)
            if listener is not None:
                listener.close()
            self._served(key)

    def _served(self, key: FrontendKey) -> None:
        self.failed.discard(key)
        self.unserved.pop(key, None)

    async def _try_listen(self, key: FrontendKey, listener: _Listener, errors: list[str]) -> bool:
        try:
            await self._listen(key, listener)
        except OSError as err:
            self.failed.add(key)
            self.unserved[key] = listen_error(err)
            if self.unserved[key] != PRIVILEGED_PORT_ERROR:  # the server warned about those once, at start
                errors.append(f"{key[0]}:{key[2]}/{key[1]}: {self.unserved[key]}")
            return False
        self._served(key)
        return True

    async def _listen(self, key: FrontendKey, listener: _Listener) -> None:
        loop = asyncio.get_running_loop()
        ip, protocol, port = key
        if protocol == "TCP" and self.tcp == "protocol":
            listener.server = await loop.create_server(tcp_factory(listener.route), ip, port, reuse_address=True,
                                                       reuse_port=self.reuse_port or None, backlog=self.backlog)
        elif protocol == "TCP" and self.tcp == "epoll":
            if self.poller is None:
                self.poller = Poller(loop)
            listener.server = TcpEpollListener(self.poller, listener.route, ip, port, backlog=self.backlog,
                                               reuse_port=self.reuse_port)
        elif protocol == "UDP":
            udp = UdpListener(listener.route, self.udp_idle_timeout)
            await loop.create_datagram_endpoint(lambda: udp, local_addr=(ip, port), reuse_port=self.reuse_port or None)
            listener.udp = udp
        else:
            log.warning("userspace proxy does not support %s (%s:%d)", protocol, ip, port)

    async def intact(self) -> bool:
        return True  # listeners live in this process; a failed one is in `unserved`

    async def counters(self) -> dict[FrontendKey, dict[Addr, int]]:
        """New connections per frontend and endpoint since the frontend was opened."""
        return {key: dict(listener.route.counts) for key, listener in self.listeners.items() if listener.route.counts}

    async def stop(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        if self.poller is not None:
            self.poller.close()
            self.poller = None
