"""Listening sockets on the host's loopback, made by the parent for the node inside the namespaces.

A socket keeps the network namespace it was created in. The parent (in the host's namespaces) binds, and
hands the listening socket over the control socket (SCM_RIGHTS); the node accepts on it and dials the target
inside its own namespace. The parent keeps no copy, knows nothing of Services and never enters the
namespaces. Messages are JSON, one per SOCK_SEQPACKET datagram:

    node -> parent  {"proto": "tcp"|"udp", "host": "127.0.0.1", "port": 31111}
    parent -> node  {"ok": true} + the socket's fd   |   {"errno": 98, "error": "Address already in use"}
"""

from __future__ import annotations

import errno
import json
import socket

MAX_MESSAGE = 4096


def bind_host_socket(proto: str, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if proto == "tcp":
            sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def serve_one(control: socket.socket, prebound: dict[tuple[str, str, int], socket.socket]) -> bool:
    """Answer one request on the parent's side; False once the node has gone (EOF). A socket in `prebound`
    (bound before the node started, so that a port in use fails the start at once) is handed over as is."""
    try:
        data = control.recv(MAX_MESSAGE)
    except ConnectionResetError:
        return False
    if not data:
        return False
    try:
        req = json.loads(data)
        proto, host, port = req["proto"], req["host"], int(req["port"])
        if proto not in ("tcp", "udp") or (host not in ("127.0.0.1", "::1") and not req.get("any_host")):
            raise ValueError(f"refused: {proto} {host}")
        sock = prebound.pop((proto, host, port), None) or bind_host_socket(proto, host, port)
    except OSError as err:
        control.send(json.dumps({"errno": err.errno, "error": err.strerror or str(err)}).encode())
        return True
    except (ValueError, KeyError, TypeError) as err:
        control.send(json.dumps({"errno": errno.EINVAL, "error": str(err)}).encode())
        return True
    try:
        socket.send_fds(control, [json.dumps({"ok": True}).encode()], [sock.fileno()])
    finally:
        sock.close()
    return True


class HostPorts:
    """The node's side: ask for a host socket. The parent answers at once (a bind), so the call blocks only
    for a round trip; it is made from the event loop's thread, one at a time."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control

    def bind(self, proto: str, host: str, port: int) -> socket.socket:
        self.control.send(json.dumps({"proto": proto, "host": host, "port": port}).encode())
        data, fds, _flags, _addr = socket.recv_fds(self.control, MAX_MESSAGE, 1)
        reply = json.loads(data or b"{}")
        if not reply.get("ok") or not fds:
            for fd in fds:
                socket.close(fd)
            code = int(reply.get("errno") or errno.EIO)
            raise OSError(code, f"{reply.get('error') or 'no answer'}: {host}:{port}/{proto} on the host")
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(False)
        return sock
