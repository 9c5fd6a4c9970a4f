"""Connecting to a pod's port as the runtime does for port-forward: to localhost inside the pod's network
namespace in netns mode (so a server bound only to 127.0.0.1 in the pod answers too), to the pod's address in
loopback mode. The socket is created by a thread that enters the namespace and comes back; a socket keeps the
namespace it was made in."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_home: int | None = None  # the agent's own network namespace, to come back to


class DialError(Exception):
    pass


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _socket_in(netns_path: str) -> socket.socket:
    global _home
    if _home is None:
        _home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(_home)  # a pool thread must never stay in a pod's namespace
    finally:
        os.close(target)


async def dial(port: int, *, netns_path: str | None, pod_ip: str
               ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP connection to ``port`` of the pod; DialError carries the runtime-style reason."""
    loop = asyncio.get_running_loop()
    if netns_path:
        try:
            sock = await asyncio.to_thread(_socket_in, netns_path)
        except OSError as err:
            raise DialError(f'failed to enter network namespace "{netns_path}": {err.strerror}') from err
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
        except OSError as err:
            sock.close()
            raise DialError(f'failed to connect to localhost:{port} inside namespace "{netns_path}", IPv4: '
                            f"dial tcp4 127.0.0.1:{port}: connect: {_reason(err)}") from err
        return _no_delay(await asyncio.open_connection(sock=sock, limit=1 << 20))
    try:
        return _no_delay(await asyncio.open_connection(pod_ip, port, limit=1 << 20))
    except OSError as err:
        raise DialError(f"dial tcp4 {pod_ip}:{port}: connect: {_reason(err)}") from err


def _no_delay(pair: tuple[asyncio.StreamReader, asyncio.StreamWriter]
              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Every forwarded write goes out at once (a relayed request must not wait for Nagle's timer)."""
    sock = pair[1].get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return pair


def _reason(err: OSError) -> str:
    return (err.strerror or str(err)).lower()
