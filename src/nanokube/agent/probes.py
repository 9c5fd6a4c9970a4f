"""Container probes and lifecycle hook actions: exec, httpGet, tcpSocket (and sleep for hooks).

``check`` runs one probe attempt; ``Prober`` runs a probe on its schedule and reports result changes with
kubelet's semantics (initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold,
failureThreshold; readiness starts failed, liveness and startup start unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nanokube.api.meta import Obj

# (argv, timeout) -> (exit code, output); runs a command inside the container's namespaces
ExecRunner = Callable[[list[str], float], Awaitable[tuple[int, str]]]

USER_AGENT = "kube-probe/1.32"


@dataclass
class Target:
    """Where a container's probes go."""

    pod_ip: str
    ports: dict[str, int]  # named container ports
    run_exec: ExecRunner


def _os_error(err: OSError) -> str:
    """Go-style text for a socket error: 'connection refused'."""
    if err.errno:
        text = os.strerror(err.errno)
        return text[:1].lower() + text[1:]
    return str(err)


def _port(value: Any, target: Target) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if value in target.ports:
        return target.ports[value]
    raise ValueError(f"unable to find port {value!r} in the container's ports")


async def http_get(action: Obj, target: Target, timeout: float) -> tuple[bool, str]:
    host = action.get("host") or target.pod_ip
    port = _port(action.get("port"), target)
    path = action.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    scheme = (action.get("scheme") or "HTTP").upper()
    context = None
    if scheme == "HTTPS":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA bundle: the kubelet never verifies
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
    for header in action.get("httpHeaders") or []:
        name = header.get("name", "")
        for existing in list(headers):
            if existing.lower() == name.lower():
                del headers[existing]
        headers[name] = header.get("value", "")
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
            writer.write(request.encode())
            await writer.drain()
            status_line = await reader.readline()
    except TimeoutError:
        return False, f'Get "{scheme.lower()}://{host}:{port}{path}": context deadline exceeded'
    except OSError as err:
        return False, f'Get "{scheme.lower()}://{host}:{port}{path}": dial tcp {host}:{port}: {_os_error(err)}'
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):  # the peer reset the connection
                await writer.wait_closed()
    parts = status_line.decode("latin-1").split(" ", 2)
    try:
        code = int(parts[1])
    except (IndexError, ValueError):
        return False, "HTTP probe failed: malformed response"
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


async def tcp_socket(action: Obj, target: Target, timeout: float) -> tuple[bool, str]:
    host = action.get("host") or target.pod_ip
    port = _port(action.get("port"), target)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as err:
        return False, f"dial tcp {host}:{port}: connect: {_os_error(err)}"
    writer.close()
    with contextlib.suppress(OSError):  # the peer reset the connection
        await writer.wait_closed()
    return True, ""


async def run_action(spec: Obj, target: Target, timeout: float) -> tuple[bool, str]:
    """One attempt of a probe or hook handler; (success, message)."""
    try:
        if "exec" in spec:
            argv = (spec["exec"] or {}).get("command") or []
            if not argv:
                return False, "exec: no command"
            code, output = await target.run_exec(list(argv), timeout)
            if code == -1:
                return False, f"command {argv!r} timed out"
            return code == 0, output if code == 0 else (output or f"command {argv!r} exited with {code}")
        if "httpGet" in spec:
            return await http_get(spec["httpGet"], target, timeout)
        if "tcpSocket" in spec:
            return await tcp_socket(spec["tcpSocket"], target, timeout)
        if "sleep" in spec:
            await asyncio.sleep(float((spec["sleep"] or {}).get("seconds", 0)))
            return True, ""
        if "grpc" in spec:
            return False, "grpc probes are not supported by nanokube"
    except ValueError as err:
        return False, str(err)
    return False, "probe has no handler"


@dataclass
class ProbeTiming:
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: Obj) -> ProbeTiming:
        return cls(float(probe.get("initialDelaySeconds") or 0), float(probe.get("periodSeconds") or 10),
                   float(probe.get("timeoutSeconds") or 1), int(probe.get("successThreshold") or 1),
                   int(probe.get("failureThreshold") or 3))


class Prober:
    """Runs one probe of one container until cancelled; ``on_change(kind, result, message)`` on every flip."""

    def __init__(self, kind: str, probe: Obj, target: Target,
                 on_change: Callable[[str, bool, str], None]) -> None:
        self.kind = kind  # startup | readiness | liveness
        self.probe = probe
        self.target = target
        self.timing = ProbeTiming.of(probe)
        self.on_change = on_change
        self.result: bool | None = False if kind == "readiness" else None
        self._successes = 0
        self._failures = 0

    async def run(self) -> None:
        t = self.timing
        loop = asyncio.get_running_loop()
        if t.initial_delay:
            await asyncio.sleep(t.initial_delay)
        while True:
            began = loop.time()
            ok, message = await run_action(self.probe, self.target, t.timeout)
            self._record(ok, message)
            if self.kind == "startup" and self.result:
                return
            elapsed = loop.time() - began
            await asyncio.sleep(max(0.0, t.period - elapsed))

    def _record(self, ok: bool, message: str) -> None:
        t = self.timing
        if ok:
            self._successes += 1
            self._failures = 0
            threshold = 1 if self.kind in ("liveness", "startup") else t.success_threshold
            if self.result is not True and self._successes >= threshold:
                self.result = True
                self.on_change(self.kind, True, "")
        else:
            self._failures += 1
            self._successes = 0
            if self.result is not False and self._failures >= t.failure_threshold:
                self.result = False
                self.on_change(self.kind, False, message)
