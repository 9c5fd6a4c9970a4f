"""Pseudo-terminals for exec, attach and `tty: true` containers: open, take as controlling terminal in the
child, resize, and read the master end from asyncio (EIO once every slave is closed means end of output)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
from collections.abc import Callable


def open_pty(columns: int = 80, rows: int = 24) -> tuple[int, int]:
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    resize(master, columns, rows)
    return master, slave


def controlling_tty(slave: int) -> Callable[[], None]:
    """A preexec_fn making ``slave`` the child's controlling terminal, in a new session. (uvloop runs it before
    its own setsid and before wiring stdio, the standard loop after both: so it uses the slave's own fd.)"""
    def take() -> None:
        if os.getsid(0) != os.getpid():
            os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    return take


def resize(master: int, columns: int, rows: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class _EofOnError(asyncio.StreamReaderProtocol):
    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(None)  # a pty master reports the slave's last close as EIO: that is EOF


async def reader_for(fd: int) -> tuple[asyncio.StreamReader, asyncio.ReadTransport]:
    """A StreamReader over ``fd`` (a pty master or a pipe), which it takes ownership of."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(lambda: _EofOnError(reader), os.fdopen(fd, "rb", buffering=0))
    return reader, transport


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FdWriter:
    """Non-blocking writes to a pipe or pty master with back-pressure; ``close`` is the reader's EOF."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.closed = False

    async def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view and not self.closed:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
            except BlockingIOError:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_writer(self.fd, _wake, ready)
                try:
                    await ready
                finally:
                    loop.remove_writer(self.fd)
            except OSError:  # the reader is gone (EPIPE) or the terminal hung up
                self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                os.close(self.fd)
