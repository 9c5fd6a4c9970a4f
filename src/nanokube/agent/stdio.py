"""A container's own stdin and terminal (`stdin: true`, `tty: true`), and its live output for `attach`.

Without `stdin` a container's stdin is /dev/null, as with any runtime. With it the agent keeps the write end
of a pipe (or the pty master with `tty`) for attach sessions; `stdinOnce` closes it when the first attach
that sent input detaches. Output written before anyone attached is kept (bounded) for the first attach, as a
runtime attached before start would show it: `kubectl run -i` attaches only once the pod is running.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from nanokube.agent import ptys

Listener = Callable[[str, bytes], None]
BACKLOG_LIMIT = 1 << 20


class ContainerStdio:
    def __init__(self, *, stdin: bool, tty: bool, stdin_once: bool) -> None:
        self.tty = tty
        self.stdin_once = stdin_once
        self.master: int | None = None
        self.child_stdin: int | None = None
        self.child_output: int | None = None  # with a tty: the slave for stdout and stderr
        self.writer: ptys.FdWriter | None = None
        self.listeners: set[Listener] = set()
        self.backlog: list[tuple[str, bytes]] | None = [] if stdin else None
        self._backlog_size = 0
        self.attached_once = False
        if tty:
            self.master, slave = ptys.open_pty()
            self.child_stdin = self.child_output = slave
            if stdin:
                self.writer = ptys.FdWriter(os.dup(self.master))
        elif stdin:
            read_end, write_end = os.pipe()
            os.set_inheritable(write_end, False)
            self.child_stdin = read_end
            self.writer = ptys.FdWriter(write_end)

    def started(self) -> None:
        """The child holds its ends now: ours are closed, so EOF and hang-up reach the right side."""
        for fd in {self.child_stdin, self.child_output} - {None}:
            with contextlib.suppress(OSError):
                os.close(fd)  # type: ignore[arg-type]
        self.child_stdin = self.child_output = None

    def tap(self, stream: str, chunk: bytes) -> None:
        if self.backlog is not None:
            if self._backlog_size + len(chunk) <= BACKLOG_LIMIT:
                self.backlog.append((stream, chunk))
                self._backlog_size += len(chunk)
        for listener in list(self.listeners):
            listener(stream, chunk)

    def subscribe(self, listener: Listener) -> list[tuple[str, bytes]]:
        """Start delivering output to ``listener``; returns what the container wrote before the first attach."""
        self.listeners.add(listener)
        backlog, self.backlog = self.backlog or [], None
        return backlog

    def unsubscribe(self, listener: Listener, sent_input: bool) -> None:
        self.listeners.discard(listener)
        if sent_input and self.stdin_once and self.writer is not None:
            self.writer.close()

    def resize(self, columns: int, rows: int) -> None:
        if self.master is not None:
            ptys.resize(self.master, columns, rows)

    def close(self) -> None:
        self.started()
        if self.writer is not None:
            self.writer.close()
        self.listeners.clear()
        self.backlog = None
        # the master itself belongs to the output pump's transport, which closes it


def container_stdio(spec: dict[str, object]) -> ContainerStdio:
    """What a container's spec asks for (without stdin/tty: stdin is /dev/null, output only tapped)."""
    return ContainerStdio(stdin=bool(spec.get("stdin")), tty=bool(spec.get("tty")),
                          stdin_once=bool(spec.get("stdinOnce")))
