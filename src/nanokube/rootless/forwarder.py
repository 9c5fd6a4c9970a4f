"""Rootless mode's port forwarder: host loopback ports -> addresses inside the node's network namespace.

Runs in the node, as one more component of the server. What is forwarded (as rootless k3s does, plus the
DNS and every NodePort):

| host side (127.0.0.1)                  | dialled inside the node                           |
|----------------------------------------|---------------------------------------------------|
| the API port                           | 127.0.0.1:<API port>                              |
| the proxy status port (if free)        | 127.0.0.1:<status port> (so `nanokube explain` works) |
| the DNS port (10053), UDP and TCP      | the kube-dns ClusterIP:53                         |
| each Service's nodePort (same number)  | node IP:nodePort                                  |
| each LoadBalancer ingress IP's port    | LB IP:port; host port = port, or 10000 + port below 1024 |

Targets are dialled inside, so the nftables proxy's output-hook DNAT applies as for any local client.
ClusterIPs stay internal (as in Kubernetes). Level-triggered: every Service change recomputes the wanted
set, then listeners are opened and closed to match. A host port that cannot be had (in use) is logged once
and retried on the next change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.client import ApiClient
from nanokube.client.informer import Informer
from nanokube.rootless.host_ports import HostPorts

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
UDP_IDLE_TIMEOUT = 90.0  # RootlessKit's per-flow timeout
COPY_CHUNK = 1 << 16

# (proto, host port) -> (target ip, target port)
Wanted = dict[tuple[str, int], tuple[str, int]]


def lb_host_port(port: int) -> int:
    """The k3s rule: a port below 1024 cannot be bound by a user, so it moves up by 10000."""
    return port if port >= 1024 else 10000 + port


def service_forwards(svc: Obj, node_ip: str) -> Wanted:
    spec = svc.get("spec") or {}
    out: Wanted = {}
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    for port in spec.get("ports") or []:
        proto = str(port.get("protocol") or "TCP").lower()
        if proto not in ("tcp", "udp"):
            continue
        if port.get("nodePort"):
            out[(proto, int(port["nodePort"]))] = (node_ip, int(port["nodePort"]))
        if spec.get("type") == "LoadBalancer":
            for ing in ingress:
                if ing.get("ip"):
                    out.setdefault((proto, lb_host_port(int(port["port"]))), (ing["ip"], int(port["port"])))
    return out


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(COPY_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close, as the other side may still answer
    except (ConnectionError, OSError, RuntimeError):  # RuntimeError: the transport closed under us
        writer.close()


class _TcpForward:
    def __init__(self, sock: socket.socket, target: tuple[str, int]) -> None:
        self.sock = sock
        self.target = target
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, sock=self.sock)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        task.add_done_callback(self.connections.discard)
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 10)
        except (OSError, TimeoutError):
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()

    def close(self) -> list[asyncio.Task[Any]]:
        """Stop listening and end the open connections; returns their tasks to await."""
        if self.server is not None:
            self.server.close()
        else:
            self.sock.close()
        for task in self.connections:
            task.cancel()
        return list(self.connections)


class _UdpFlow(asyncio.DatagramProtocol):
    def __init__(self, front: _UdpForward, client: tuple[str, int]) -> None:
        self.front = front
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.last = time.monotonic()
        if self.front.transport is not None:
            self.front.transport.sendto(data, self.client)


class _UdpForward(asyncio.DatagramProtocol):
    """Per-client flows: each client gets its own socket towards the target, so replies find their way back."""

    def __init__(self, sock: socket.socket, target: tuple[str, int]) -> None:
        self.sock = sock
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple[str, int], _UdpFlow] = {}
        self.pending: dict[tuple[str, int], list[bytes]] = {}
        self.sweeper: asyncio.Task[None] | None = None
        self.opening: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, sock=self.sock)
        self.sweeper = asyncio.create_task(self._sweep(), name=f"rootless-udp-sweep:{self.target}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        flow = self.flows.get(addr)
        if flow is not None and flow.transport is not None:
            flow.last = time.monotonic()
            flow.transport.sendto(data)
            return
        if addr in self.pending:
            self.pending[addr].append(data)
            return
        self.pending[addr] = [data]
        task = asyncio.get_running_loop().create_task(self._open_flow(addr), name=f"rootless-udp-flow:{addr}")
        self.opening.add(task)
        task.add_done_callback(self.opening.discard)

    async def _open_flow(self, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, flow = await loop.create_datagram_endpoint(lambda: _UdpFlow(self, addr),
                                                                  remote_addr=self.target)
        except OSError:
            self.pending.pop(addr, None)
            return
        self.flows[addr] = flow
        for data in self.pending.pop(addr, []):
            transport.sendto(data)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(UDP_IDLE_TIMEOUT / 3)
            cutoff = time.monotonic() - UDP_IDLE_TIMEOUT
            for addr in [a for a, f in self.flows.items() if f.last < cutoff]:
                flow = self.flows.pop(addr)
                if flow.transport is not None:
                    flow.transport.close()

    def close(self) -> list[asyncio.Task[Any]]:
        for task in self.opening:
            task.cancel()
        if self.sweeper is not None:
            self.sweeper.cancel()
        for flow in self.flows.values():
            if flow.transport is not None:
                flow.transport.close()
        self.flows.clear()
        if self.transport is not None:
            self.transport.close()
        else:
            self.sock.close()
        return [*self.opening, *([self.sweeper] if self.sweeper else [])]


@dataclass
class Forwarder:
    host_ports: HostPorts
    node_ip: str
    static: Wanted  # the API and the DNS: opened before ready; a failure stops the server with the reason
    best_effort: Wanted = field(default_factory=dict)  # e.g. the proxy status port: warned about, retried
    open: dict[tuple[str, int], tuple[tuple[str, int], _TcpForward | _UdpForward]] = field(default_factory=dict)
    failed: set[tuple[str, int]] = field(default_factory=set)
    closing: set[asyncio.Task[Any]] = field(default_factory=set)

    async def run(self, client: ApiClient, ready: asyncio.Event) -> None:
        for key, target in self.static.items():
            await self._open(key, target)  # raises: a host port in use stops the server with the reason
        informer = Informer(client, by_kind("", "Service"))
        wake = asyncio.Event()
        informer.add_handler(on_add=lambda _o: wake.set(), on_update=lambda _o, _n: wake.set(),
                             on_delete=lambda _o: wake.set(), on_synced=wake.set)
        watcher = asyncio.create_task(informer.run(), name="rootless-forwarder-informer")
        try:
            await informer.synced.wait()
            while True:
                wake.clear()
                await self._reconcile(informer.list())
                ready.set()
                await wake.wait()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            ending = [task for _target, fwd in self.open.values() for task in fwd.close()]
            self.open.clear()
            await asyncio.gather(*ending, *self.closing, return_exceptions=True)

    async def _reconcile(self, services: list[Obj]) -> None:
        wanted: Wanted = {**self.best_effort, **self.static}
        for svc in sorted(services, key=lambda s: s["metadata"].get("creationTimestamp") or ""):
            for key, target in service_forwards(svc, self.node_ip).items():
                wanted.setdefault(key, target)  # the older Service keeps a shared host port
        for key in [k for k, (target, _f) in self.open.items() if wanted.get(k) != target]:
            for task in self.open.pop(key)[1].close():  # kept until its cancelled connections are done
                self.closing.add(task)
                task.add_done_callback(self.closing.discard)
        for key, target in wanted.items():
            if key not in self.open:
                try:
                    await self._open(key, target)
                except OSError as err:
                    if key not in self.failed:
                        log.warning("rootless: cannot forward host %s:%d/%s to %s:%d: %s", HOST, key[1], key[0],
                                    target[0], target[1], err.strerror or err)
                    self.failed.add(key)
        self.failed &= set(wanted)

    async def _open(self, key: tuple[str, int], target: tuple[str, int]) -> None:
        proto, port = key
        sock = self.host_ports.bind(proto, HOST, port)
        fwd: _TcpForward | _UdpForward = _TcpForward(sock, target) if proto == "tcp" else _UdpForward(sock, target)
        await fwd.start()
        self.open[key] = (target, fwd)
        self.failed.discard(key)
