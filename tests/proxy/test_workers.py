"""The multi-process userspace backend: real worker processes, real sockets on 127.x, real kills."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from tests.proxy.objects import endpoint, endpoint_slice, service
from tests.proxy.test_userspace import BACKENDS, EPP, WEB, ask, refused, slice_of, spread_then_shift, start_backends

from nanokube.proxy.proxier import Proxier
from nanokube.proxy.state import ProxyState
from nanokube.proxy.worker_pool import WorkerDied, WorkerPoolBackend

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreading is Linux")


def make(workers: int = 2) -> Proxier:
    p = Proxier(state=ProxyState(node_name="node-a", nodeport_ips=("127.0.0.1",)),
                backend=WorkerPoolBackend(workers=workers, udp_idle_timeout=5))
    p.on_services_synced()
    p.on_endpointslices_synced()
    return p


def listeners(ip: str, port: int) -> int:
    """How many TCP sockets LISTEN on ip:port (each SO_REUSEPORT worker holds one)."""
    want = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/tcp") as f:
        return sum(1 for line in f.readlines()[1:] if line.split()[1] == want and line.split()[3] == "0A")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


async def test_pool_spreads_refuses_follows_changes_and_reaps() -> None:
    servers = await start_backends()
    p = make()
    backend: WorkerPoolBackend = p.backend  # type: ignore[assignment]
    try:
        p.on_service_add(service("web", "127.96.1.10", WEB))
        await p.sync()
        pids = backend.pids
        assert len(pids) == 2 and p.synced_once.is_set()
        assert await refused("127.96.1.10", 8080)
        await spread_then_shift(p, "127.96.1.10")  # a sync returns once every worker acked
        assert listeners("127.96.1.10", 8080) == 2  # both workers accept (SO_REUSEPORT)
        p.on_endpointslice_delete(slice_of(BACKENDS[2:], rv="2"))
        await p.sync()
        assert await refused("127.96.1.10", 8080)
        assert p.status.service("default", "web") is not None
    finally:
        await backend.stop()
        for s in servers:
            s.close()
    assert all(gone(pid) for pid in pids)


async def test_pool_affinity_udp_and_a_taken_port() -> None:
    servers = await start_backends()
    blocker = socket.create_server(("127.96.1.30", 8080))  # someone else's listener on one frontend
    p = make()
    loop = asyncio.get_running_loop()
    udp_ports = [{"name": "dns", "port": 9090, "protocol": "UDP"}]
    try:
        p.on_service_add(service("sticky", "127.96.1.20", WEB, affinity_timeout=60))
        p.on_endpointslice_add(endpoint_slice("sticky", [endpoint(ip) for ip in BACKENDS], EPP))
        p.on_service_add(service("taken", "127.96.1.30", WEB))
        p.on_endpointslice_add(endpoint_slice("taken", [endpoint(ip) for ip in BACKENDS], EPP))
        p.on_service_add(service("dns", "127.96.1.53", [{"name": "dns", "port": 5353, "targetPort": 9090,
                                                          "protocol": "UDP"}]))
        dns1 = endpoint_slice("dns", [endpoint(BACKENDS[0])], udp_ports)
        p.on_endpointslice_add(dns1)
        await p.sync()  # the taken port does not fail the sync nor block the others
        assert p.synced_once.is_set() and p.status.last_error == ""
        taken = p.status.services_json()["default/taken"]["ports"][0]["frontends"][0]
        assert taken["address"] == "127.96.1.30:8080" and taken["error"] == "Address already in use"
        assert "error" not in p.status.services_json()["default/sticky"]["ports"][0]["frontends"][0]
        assert listeners("127.96.1.20", 8080) == 1  # affinity: one worker owns it, so a client stays pinned
        assert len({await ask("127.96.1.20", 8080) for _ in range(30)}) == 1
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect(("127.96.1.53", 5353))
        for _ in range(3):
            await loop.sock_sendall(s, b"q")
            assert (await asyncio.wait_for(loop.sock_recv(s, 100), 2)).decode() == BACKENDS[0]
        dns2 = endpoint_slice("dns", [endpoint(BACKENDS[1])], udp_ports, rv="2")
        p.on_endpointslice_update(dns1, dns2)
        blocker.close()
        await p.sync()  # also probes the taken port again: now free, so it opens
        await loop.sock_sendall(s, b"q")
        assert (await asyncio.wait_for(loop.sock_recv(s, 100), 2)).decode() == BACKENDS[1]
        s.close()
        assert listeners("127.96.1.30", 8080) == 2
        assert await ask("127.96.1.30", 8080) in BACKENDS
        assert "error" not in p.status.services_json()["default/taken"]["ports"][0]["frontends"][0]
    finally:
        blocker.close()
        await p.backend.stop()
        for t in servers:
            t.close()


async def test_a_dead_worker_fails_the_sync_and_the_full_resync_replaces_it() -> None:
    servers = await start_backends()
    p = make()
    backend: WorkerPoolBackend = p.backend  # type: ignore[assignment]
    try:
        p.on_service_add(service("web", "127.96.1.40", WEB))
        first = slice_of(BACKENDS)
        p.on_endpointslice_add(first)
        await p.sync()
        victim = backend.pids[0]
        os.kill(victim, signal.SIGKILL)
        await backend.workers[0].proc.wait()  # type: ignore[union-attr]
        p.on_endpointslice_update(first, slice_of(BACKENDS[:1], rv="2"))
        with pytest.raises(WorkerDied):
            await p.sync()
        await p.sync()  # full: starts a new worker and gives it the whole table
        assert victim not in backend.pids and len(backend.pids) == 2
        assert listeners("127.96.1.40", 8080) == 2
        assert {await ask("127.96.1.40", 8080) for _ in range(20)} == {BACKENDS[0]}
    finally:
        await backend.stop()
        for s in servers:
            s.close()


async def test_a_periodic_sync_replaces_a_dead_worker_with_nothing_changed() -> None:
    servers = await start_backends()
    p = make()
    backend: WorkerPoolBackend = p.backend  # type: ignore[assignment]
    try:
        p.on_service_add(service("web", "127.96.1.41", WEB))
        p.on_endpointslice_add(slice_of(BACKENDS))
        await p.sync()
        victim = backend.pids[1]
        os.kill(victim, signal.SIGKILL)
        await backend.workers[1].proc.wait()  # type: ignore[union-attr]
        assert listeners("127.96.1.41", 8080) == 1
        await p.sync()  # what the runner's max interval runs: no Service changed
        assert victim not in backend.pids and len(backend.pids) == 2
        assert listeners("127.96.1.41", 8080) == 2
    finally:
        await backend.stop()
        for s in servers:
            s.close()


PARENT = """
import asyncio, sys
from nanokube.proxy.worker_pool import WorkerPoolBackend

async def main():
    b = WorkerPoolBackend(workers=2)
    await b.full_sync({})
    print(" ".join(map(str, b.pids)), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_workers_die_with_their_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(x) for x in parent.stdout.readline().split()]  # type: ignore[union-attr]
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, "proxy workers outlived their parent"
        time.sleep(0.02)


async def test_pool_workers_on_uvloop_pass_resets_half_close_and_a_server_that_speaks_first() -> None:
    """The workers run the epoll relay on uvloop: a backend's reset reaches the client as a reset (a libuv poll
    handle would swallow it), EOF is passed on while the other direction runs, and a greeting sent before the
    client says anything (MySQL's) arrives."""

    class Backend(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport
            transport.write(b"hello\n")  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            if data.startswith(b"boom"):
                self.t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.t.abort()  # type: ignore[attr-defined]
            else:
                self.t.write(data.upper())  # type: ignore[attr-defined]

        def eof_received(self) -> bool:
            self.t.write(b"bye\n")  # type: ignore[attr-defined]
            self.t.close()
            return True

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Backend, BACKENDS[0], 9194, reuse_address=True)
    p = make()
    try:
        p.on_service_add(service("talk", "127.96.1.40", [{"name": "", "port": 84, "targetPort": 9194}]))
        p.on_endpointslice_add(endpoint_slice("talk", [endpoint(BACKENDS[0])], [{"name": "", "port": 9194}]))
        await p.sync()
        reader, writer = await asyncio.open_connection("127.96.1.40", 84)
        assert await asyncio.wait_for(reader.readline(), 2) == b"hello\n"
        writer.write(b"abc\n")
        assert await asyncio.wait_for(reader.readline(), 2) == b"ABC\n"
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 2) == b"bye\n"
        writer.close()
        reader, writer = await asyncio.open_connection("127.96.1.40", 84)
        assert await asyncio.wait_for(reader.readline(), 2) == b"hello\n"
        writer.write(b"boom\n")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 2)
        writer.close()
    finally:
        await p.backend.stop()
        server.close()
