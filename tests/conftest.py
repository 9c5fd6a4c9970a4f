"""Shared fixtures: a real `nanokube server` process and the real kubectl pointed at it."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
KUBECTL = shutil.which("kubectl") or "kubectl"


def _scratch() -> Path:
    """One directory per test session (named by pid: this module is imported both as `conftest` and as
    `tests.conftest`) for servers' data dirs and logs, removed when the session ends."""
    root = Path(tempfile.gettempdir()) / f"nanokube-tests-{os.getpid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(Path(tempfile.gettempdir()) / f"nanokube-tests-{os.getpid()}", ignore_errors=True)


# NANOKUBE_TEST_DATASTORE=etcd runs every test server on etcd: one throwaway etcd for the session, each data dir
# under its own key root (--datastore-prefix), so a server restarted on the same data dir finds its objects.
DATASTORE = os.environ.get("NANOKUBE_TEST_DATASTORE", "sqlite")
_SESSION_ETCD: list[Any] = []


def datastore_args(data_dir: Path) -> list[str]:
    if DATASTORE != "etcd":
        return []
    if not _SESSION_ETCD:
        import atexit

        from tests.etcd_cluster import new_cluster

        cluster = new_cluster().start()
        _SESSION_ETCD.append(cluster)
        # this module is imported twice (as `conftest` and `tests.conftest`): the instance that started etcd
        # stops it, whichever the session-finish hook belongs to
        atexit.register(cluster.stop)
    return ["--datastore-endpoint", _SESSION_ETCD[0].endpoints, "--datastore-prefix", f"/{data_dir.name}"]


@pytest.fixture(autouse=True)
def _no_tasks_left_running(request: pytest.FixtureRequest) -> None:
    """Async tests must stop what they start: a task still running after the test fails it."""
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        request.getfixturevalue("_asyncio_tasks_checked")


@pytest.fixture
async def _asyncio_tasks_checked() -> Any:
    yield
    me = asyncio.current_task()
    # A task whose cancellation is under way was stopped by its owner: let it unwind (cancelling what it awaits).
    stopping = [t for t in asyncio.all_tasks() if t is not me and not t.done() and t.cancelling()]
    if stopping:
        await asyncio.wait(stopping, timeout=5)
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t is not me and not t.done() and not t.cancelling()]
    if left:
        names = sorted(f"{t.get_name()} ({getattr(t.get_coro(), '__qualname__', t.get_coro())})" for t in left)
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=5)
        pytest.fail(f"the test left {len(left)} asyncio task(s) running: {', '.join(names)}", pytrace=False)


def _new_file(prefix: str) -> Path:
    """A new empty file in the session's scratch directory (created, so no other process can take the name)."""
    fd, path = tempfile.mkstemp(prefix=prefix, dir=_scratch())
    os.close(fd)
    return Path(path)


def _die_with_parent() -> None:
    """A test server gets SIGTERM when the test process dies (a killed or timed-out pytest leaks nothing)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Server:
    """A running `nanokube server` subprocess."""

    data_dir: Path
    api_port: int
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    ready_line: str = ""
    log_path: Path = field(default_factory=lambda: _new_file("log-"))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    def command(self) -> list[str]:
        return [sys.executable, "-m", "nanokube", "server", "--data-dir", str(self.data_dir),
                "--api-listen", f"127.0.0.1:{self.api_port}", *self.args]

    def start(self, timeout: float = 30.0) -> Server:
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=self._log,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        buf = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()[-4000:]}")
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                chunk = b""
            if chunk:
                buf += chunk.decode(errors="replace")
                for line in buf.splitlines():
                    if line.startswith("nanokube ready"):
                        self.ready_line = line
                        if self.api_port == 0:  # the server took a port the kernel chose; a restart keeps it
                            self.api_port = int(line.split(" api=", 1)[1].split()[0].rsplit(":", 1)[1])
                        return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        code = self.proc.returncode
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        self.proc = None

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    # -- kubectl --------------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **(env or {})}
        proc = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True, timeout=timeout,
                              env=full_env)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def apply(self, manifest: str | dict, *extra: str) -> str:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self.kubectl("apply", "-f", "-", *extra, input=text).stdout

    def client(self):  # type: ignore[no-untyped-def]
        """The official kubernetes Python client configured for this server."""
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return client, api_client


def start_server(*args: str, data_dir: Path | None = None) -> Server:
    data = data_dir or Path(tempfile.mkdtemp(prefix="nanokube-test-", dir=_scratch()))
    srv = Server(data_dir=data, api_port=0, args=[*args, *datastore_args(data)])  # 0: no bind-then-release race
    return srv.start()


@pytest.fixture
def make_server() -> Iterator:
    started: list[Server] = []

    def factory(*args: str, data_dir: Path | None = None) -> Server:
        srv = start_server(*args, data_dir=data_dir)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


def module_server(*args: str) -> Any:
    """A module-scoped fixture: one server started with `args` for the whole test module, stopped after it.
    Use as `server = module_server("--network", "loopback", ...)` (the fixture takes the variable's name)."""

    @pytest.fixture(scope="module")
    def fixture() -> Iterator[Server]:
        srv = start_server(*args)
        try:
            yield srv
        finally:
            srv.stop()

    return fixture


# A control-plane-only server (no agent, proxy or DNS) shared by a test module.
api_server = module_server("--network", "loopback", "--components=", "--no-agent")
