"""One run of one container as a host process: start (in the pod's namespaces through the launcher, or
directly in loopback mode), log pumping, exit status, graceful stop and exec inside the container."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanokube.agent.cgroups import Cgroup
from nanokube.agent.logs import ContainerLog, pump
from nanokube.agent.ptys import controlling_tty, reader_for
from nanokube.agent.stdio import ContainerStdio

LAUNCHER = str(Path(__file__).resolve().parent / "launcher.py")
PIPE_DRAIN = 0.5  # seconds without new output after which the log pumps stop (an escaped writer holds the pipe)
PIPE_DRAIN_MAX = 5.0  # and the longest the drain waits while output keeps coming


class StartError(Exception):
    """The program could not be started (waiting/terminated reason StartError, exit code 128)."""


@dataclass
class Isolation:
    """How to place a process: the pod's netns and what the container's mount namespace shows."""

    enabled: bool = False  # False (loopback mode): a plain process, no namespaces
    netns: str | None = None  # path of the pod's network namespace; None: the host's
    hostname: str | None = None
    domainname: str | None = None
    files: list[tuple[str, str]] = field(default_factory=list)  # (source, target) single-file binds
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)  # (source, target, readOnly)
    tmpfs: list[str] = field(default_factory=list)
    # security.Security.launcher_spec(): uid, gid, groups, capabilities, no_new_privs, read_only_root
    security: dict[str, Any] = field(default_factory=dict)

    @property
    def namespaced(self) -> bool:
        return self.enabled


@dataclass
class ExitStatus:
    code: int
    signal: int | None
    started_at: float  # epoch seconds
    finished_at: float
    oom_killed: bool = False

    @property
    def ran_for(self) -> float:
        return self.finished_at - self.started_at


class ContainerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, log: ContainerLog, log_fd: int, pipes: list[OutputPipe],
                 isolation: Isolation, env: dict[str, str], cwd: str, stdio: ContainerStdio | None = None,
                 cgroup: Cgroup | None = None) -> None:
        self.proc = proc
        self.stdio = stdio
        self.cgroup = cgroup  # made for this run: its OOM counter starts at 0
        self.pid = proc.pid
        self.log = log
        self._log_fd = log_fd
        self._pipes = pipes
        tap = stdio.tap if stdio is not None else None
        self._pumps = [asyncio.ensure_future(pump(p.reader, p.stream, log_fd, log, tap)) for p in pipes]
        self.isolation = isolation
        self.env = env
        self.cwd = cwd
        self.started_at = time.time()
        self.exit: ExitStatus | None = None
        self.exited = asyncio.Event()
        self._waiter = asyncio.ensure_future(self._wait())

    async def _wait(self) -> None:
        rc = await self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # the rest of the container's process group goes with it
        oom_killed = False
        if self.cgroup is not None:
            oom_killed = self.cgroup.oom_kills() > 0
            self.cgroup.kill()  # and whatever escaped the group (setsid, double fork)
        lingering = await self._drain_pipes()
        for task in lingering:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for pipe in self._pipes:
            pipe.transport.close()
        os.close(self._log_fd)
        if self.stdio is not None:
            self.stdio.close()
        self.log.end_run()
        sig = -rc if rc < 0 else None
        self.exit = ExitStatus(code=128 + sig if sig else rc, signal=sig, started_at=self.started_at,
                               finished_at=time.time(), oom_killed=oom_killed)
        if self.cgroup is not None:
            self.cgroup.remove_soon()
        self.exited.set()

    async def _drain_pipes(self) -> set[asyncio.Future[None]]:
        """Wait for the log pumps to reach the end of the pipes; the pumps still going when no output came for
        PIPE_DRAIN seconds (or after PIPE_DRAIN_MAX). The pipes end when every writer is gone, but a process that
        escaped the group (setsid) may hold them open until the pod's sweep kills it. Progress is measured in
        the log's size, so a busy event loop that could not run the pumps in time does not cut the output."""
        deadline = time.monotonic() + PIPE_DRAIN_MAX
        size = os.fstat(self._log_fd).st_size
        pending: set[asyncio.Future[None]] = set(self._pumps)
        while pending:
            _done, pending = await asyncio.wait(pending, timeout=PIPE_DRAIN)
            await asyncio.sleep(0)  # input that arrived with the timer is handed to the pumps first
            now_size = os.fstat(self._log_fd).st_size
            if now_size == size or time.monotonic() > deadline:
                break
            size = now_size
        return {t for t in pending if not t.done()}

    @property
    def running(self) -> bool:
        return self.exit is None

    def signal(self, sig: int) -> None:
        if self.exit is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    async def stop(self, grace: float) -> ExitStatus:
        """SIGTERM, then SIGKILL to the whole process group once ``grace`` seconds have passed."""
        if self.exit is None:
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.exited.wait(), max(grace, 0.0))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                if self.cgroup is not None:
                    self.cgroup.kill()
                await self.exited.wait()
        assert self.exit is not None
        return self.exit

    async def run_inside(self, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run a command in this container's namespaces with its environment (exec probes and hooks).
        Returns (exit code, output); exit code -1 on timeout."""
        if self.isolation.namespaced and self.exit is None:
            full = ["nsenter", "-t", str(self.pid), "-n", "-u", "-m", "-i", f"--wd={self.cwd}", "--", *argv]
            cwd = None
        else:
            full, cwd = argv, self.cwd if _is_dir(self.cwd) else None
        try:
            proc = await asyncio.create_subprocess_exec(*full, env=self.env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                        start_new_session=True)
        except OSError as err:
            return 126, str(err)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return -1, ""
        return proc.returncode or 0, out.decode(errors="replace")[:4096]


@dataclass
class OutputPipe:
    """The read end of a container's stdout or stderr. The agent owns these pipes (not asyncio's subprocess
    transport), so a container's exit is seen even while an escaped descendant still holds the write end."""

    stream: str
    reader: asyncio.StreamReader
    transport: asyncio.ReadTransport


async def _output_pipe(stream: str, read_fd: int) -> OutputPipe:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(read_fd, "rb", buffering=0))
    return OutputPipe(stream, reader, transport)


def join_cgroup(procs_files: list[str], then: Callable[[], None] | None) -> Callable[[], None]:
    """A preexec_fn: the child enters its cgroups before it runs anything, so every descendant is counted."""
    def join() -> None:
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        if then is not None:
            then()
    return join


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)


async def _read_status(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    chunks: list[bytes] = []

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if data:
            chunks.append(data)
            return
        loop.remove_reader(fd)
        if not done.done():
            done.set_result(b"".join(chunks))

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _run_as(security: dict[str, Any]) -> bool:
    """Whether a plain process (loopback mode) must change its user or groups (only root gets this far)."""
    return any(security.get(k) is not None and security[k] != own
               for k, own in (("uid", os.getuid()), ("gid", os.getgid()))) or bool(security.get("groups"))


async def start(argv: list[str], *, env: dict[str, str], cwd: str, isolation: Isolation, log: ContainerLog,
                restart: int, on_spawn: Callable[[int], None] | None = None,
                stdio: ContainerStdio | None = None, cgroup: Cgroup | None = None) -> ContainerProcess:
    """Start one container run; its output goes to ``log``'s file for ``restart``. Raises StartError.
    ``stdio`` gives it a stdin pipe or a terminal (stdin/tty in its spec) that attach sessions use."""
    path = log.start_run(restart)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    status_r = status_w = None
    child_stdin: int = asyncio.subprocess.DEVNULL
    extra: dict[str, Any] = {}
    if stdio is not None and stdio.child_stdin is not None:
        child_stdin = stdio.child_stdin
    if stdio is not None and stdio.tty:
        out_r, out_w = os.dup(stdio.master), os.dup(stdio.child_output)  # type: ignore[arg-type]
        err_r, err_w = None, os.dup(stdio.child_output)  # type: ignore[arg-type]
        extra["preexec_fn"] = controlling_tty(stdio.child_output)  # type: ignore[arg-type]
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
    if cgroup is not None:
        extra["preexec_fn"] = join_cgroup(cgroup.procs_files, extra.get("preexec_fn"))
    try:
        if isolation.namespaced or _run_as(isolation.security):  # the launcher also changes users (uvloop can't)
            status_r, status_w = os.pipe()
            spec = {"namespaces": isolation.namespaced, "netns": isolation.netns, "hostname": isolation.hostname, "domainname": isolation.domainname,
                    "files": isolation.files, "mounts": isolation.mounts, "tmpfs": isolation.tmpfs,
                    "cwd": cwd, "argv": argv, "status_fd": status_w, "security": isolation.security}
            full = [sys.executable, "-I", "-S", LAUNCHER, json.dumps(spec)]
            proc = await asyncio.create_subprocess_exec(
                *full, env=env, stdin=child_stdin, stdout=out_w, stderr=err_w,
                start_new_session=True, pass_fds=(status_w,), **extra)
            if on_spawn:
                on_spawn(proc.pid)
            os.close(status_w)
            status_w = None
            failure = await _read_status(status_r)
            status_r = None
            if failure:
                await proc.wait()
                raise StartError(failure.decode(errors="replace"))
        else:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, env=env, cwd=cwd, stdin=child_stdin, stdout=out_w, stderr=err_w,
                    start_new_session=True, **extra)
            except FileNotFoundError as err:
                if err.filename == cwd:
                    raise StartError(f"chdir to cwd (\"{cwd}\") set in config.json failed: no such file or directory"
                                     ) from err
                raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH') from err
            except OSError as err:
                raise StartError(str(err)) from err
            if on_spawn:
                on_spawn(proc.pid)
    except BaseException:
        for fd in (status_r, status_w, log_fd, out_r, out_w, err_r, err_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if stdio is not None:
            stdio.close()
        log.end_run()
        raise
    os.close(out_w)
    os.close(err_w)
    if stdio is not None:
        stdio.started()
    if err_r is None:  # a terminal: one output stream
        reader, transport = await reader_for(out_r)
        pipes = [OutputPipe("stdout", reader, transport)]
    else:
        pipes = [await _output_pipe("stdout", out_r), await _output_pipe("stderr", err_r)]
    return ContainerProcess(proc, log, log_fd, pipes, isolation, env, cwd, stdio, cgroup)
