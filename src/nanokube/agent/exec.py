"""`kubectl exec`: a command started in a running container's namespaces (network, UTS, mount, IPC, entered
with nsenter from the container's first process, as its exec probes are) with the container's environment
and working directory, or as a plain process in loopback mode; its stdio wired to a channel WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
from dataclasses import dataclass

from nanokube.agent import channels, ptys
from nanokube.agent.channels import ChannelSocket
from nanokube.agent.process import ContainerProcess

DRAIN_IDLE = 1.0  # after the command exits, output still flowing is read until it pauses this long


@dataclass
class ExecOptions:
    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


@functools.cache
def _wd_option() -> str:
    """nsenter's option for a working directory inside the entered mount namespace (--wd opens the path
    before entering: it fails for a mountPath that exists only in the container's view)."""
    try:
        usage = subprocess.run(["nsenter", "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        usage = ""
    return "--wdns" if "--wdns" in usage else "--wd"


def exec_argv(target: ContainerProcess, command: list[str]) -> tuple[list[str], str | None]:
    """The argv to spawn and the cwd to spawn it in (None: nsenter changes directory inside)."""
    if target.isolation.namespaced:
        return ["nsenter", "-t", str(target.pid), "-n", "-u", "-m", "-i", f"{_wd_option()}={target.cwd}", "--",
                *command], None
    return command, target.cwd if os.path.isdir(target.cwd) else None


class Session:
    """One process and its pipes (or pty) while a client streams with it."""

    def __init__(self, proc: asyncio.subprocess.Process, outputs: list[tuple[int, asyncio.StreamReader,
                 asyncio.ReadTransport]], stdin: ptys.FdWriter | None, master: int | None) -> None:
        self.proc = proc
        self.outputs = outputs
        self.stdin = stdin
        self.master = master
        self.progress = 0

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        for _ch, _reader, transport in self.outputs:
            transport.close()
        if self.stdin is not None:
            self.stdin.close()


async def spawn(target: ContainerProcess, opts: ExecOptions) -> Session:
    argv, cwd = exec_argv(target, opts.command)
    fds_to_close: list[int] = []
    try:
        if opts.tty:
            master, slave = ptys.open_pty()
            fds_to_close.append(slave)
            proc = await asyncio.create_subprocess_exec(
                *argv, env=target.env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                preexec_fn=ptys.controlling_tty(slave))
            read_end = os.dup(master)
            reader, transport = await ptys.reader_for(read_end)
            return Session(proc, [(channels.STDOUT, reader, transport)], ptys.FdWriter(master), master)
        in_r = in_w = None
        if opts.stdin:
            in_r, in_w = os.pipe()
            fds_to_close.append(in_r)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        fds_to_close += [out_w, err_w]
        proc = await asyncio.create_subprocess_exec(
            *argv, env=target.env, cwd=cwd, stdin=in_r if in_r is not None else asyncio.subprocess.DEVNULL,
            stdout=out_w, stderr=err_w, start_new_session=True)
        outputs = []
        for channel, fd in ((channels.STDOUT, out_r), (channels.STDERR, err_r)):
            reader, transport = await ptys.reader_for(fd)
            outputs.append((channel, reader, transport))
        return Session(proc, outputs, ptys.FdWriter(in_w) if in_w is not None else None, None)
    finally:
        for fd in fds_to_close:
            with contextlib.suppress(OSError):
                os.close(fd)


async def pump_output(session: Session, sock: ChannelSocket, channel: int, reader: asyncio.StreamReader,
                      forward: bool) -> None:
    while True:
        chunk = await reader.read(channels.CHUNK)
        if not chunk:
            return
        session.progress += len(chunk)
        if forward:
            await sock.send(channel, chunk)


async def pump_input(sock: ChannelSocket, stdin: ptys.FdWriter | None, master: int | None,
                     tty: bool) -> None:
    """Client messages to the process until the client goes away."""
    async for channel, payload in sock.messages():
        if channel == channels.STDIN and stdin is not None and payload:
            await stdin.write(payload)
        elif channel == channels.RESIZE and master is not None:
            size = channels.parse_resize(payload)
            if size:
                ptys.resize(master, *size)
        elif channel == channels.CLOSE and sock.v5 and payload[:1] == b"\x00" and stdin is not None:
            if tty:
                await stdin.write(b"\x04")  # end of input on a terminal is ^D
            else:
                stdin.close()


async def drain(session: Session, pumps: list[asyncio.Task]) -> None:
    """Wait for the output pumps after the process exited; a descendant that keeps a pipe open forever does
    not hold the session once output stops flowing."""
    while pumps:
        seen = session.progress
        _done, pending = await asyncio.wait(pumps, timeout=DRAIN_IDLE)
        if not pending:
            return
        if session.progress == seen:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            return


async def run(sock: ChannelSocket, target: ContainerProcess, opts: ExecOptions) -> None:
    """Run the command with the client attached; the Status with its exit code ends the stream."""
    try:
        session = await spawn(target, opts)
    except (OSError, subprocess.SubprocessError) as err:
        why = getattr(err, "strerror", None) or err
        await sock.send_status(channels.failure(f"failed to exec in container: exec: \"{opts.command[0]}\": {why}"))
        return
    pumps = [asyncio.ensure_future(pump_output(session, sock, ch, reader,
                                               opts.stdout if ch == channels.STDOUT else opts.stderr))
             for ch, reader, _t in session.outputs]
    inputs = asyncio.ensure_future(pump_input(sock, session.stdin, session.master, opts.tty))
    exited = asyncio.ensure_future(session.proc.wait())
    try:
        await asyncio.wait([exited, inputs], return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():  # the client went away: the command goes with it
            session.kill()
            await exited
            return
        session.kill()  # whatever the command left in its process group
        await drain(session, pumps)
        code = exited.result()
        code = 128 - code if code < 0 else code
        await sock.send_status(channels.success() if code == 0 else channels.exit_status(code, opts.command))
    finally:
        inputs.cancel()
        for task in pumps:
            task.cancel()
        await asyncio.gather(inputs, *pumps, return_exceptions=True)
        if not exited.done():
            session.kill()
            with contextlib.suppress(BaseException):
                await exited
        session.close()
