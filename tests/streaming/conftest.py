"""A loopback-mode server per test module for the streaming subresources (exec, attach, port-forward, proxy),
driven with the real kubectl and the official Python client."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from tests.conftest import Server
from tests.loopback.conftest import start_loopback_server

SLEEPER = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"],
                                    "workingDir": "/tmp", "env": [{"name": "GREETING", "value": "hello-pod"}]}]}}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Server]:
    srv = start_loopback_server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def sleeper(cluster: Server) -> str:
    cluster.apply(SLEEPER)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=60s", timeout=90)
    return "sleeper"


def kubectl_run(srv: Server, *args: str, input: bytes | None = None, timeout: float = 60,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """kubectl with bytes in and out (binary stdin/stdout), not raising on a non-zero exit."""
    import os

    return subprocess.run(["kubectl", "--kubeconfig", str(srv.kubeconfig), *args], input=input,
                          capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})


def children_of(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (from /proc), to check that nothing an exec started is left."""
    import os

    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        kids = [p for p, pp in parents.items() if pp == current]
        out += kids
        todo += kids
    return out


ATTACHING = b"If you don't see a command prompt"  # what kubectl attach/run -it/debug -it print as they attach


def type_after(proc: subprocess.Popen[bytes], marker: bytes, typed: bytes, timeout: float = 60) -> bytes:
    """Everything `proc` (kubectl in script(1)'s terminal) prints: once its output shows `marker` (b"": any output,
    such as a shell's prompt) `typed` is written and its input closed. Typing earlier can reach kubectl before it
    is attached to the container's terminal."""
    import os
    import select
    import time

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while not seen or marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"no {marker!r} from {proc.args!r} in {timeout}s: {seen!r}")
        if select.select([fd], [], [], left)[0]:
            seen += os.read(fd, 65536)
    out, _ = proc.communicate(typed, timeout=timeout)
    return seen + out
