"""Container logs: one file per container and restart, in the CRI format kubelet reads.

Each line is ``<RFC3339Nano time> <stdout|stderr> <F|P> <text>`` (P = partial line). The agent pumps a
container's pipes into its file; the kubelet HTTP server reads them back with tail/since/timestamps/limit
and follows a running container until it exits.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

PARTIAL_LIMIT = 16 * 1024


def rfc3339_nano(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC3339(Nano) time (sub-microsecond digits are dropped)."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    main, plus, zone = text.partition("+")
    if "." in main:
        head, frac = main.split(".", 1)
        main = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(main + plus + zone).timestamp()


@dataclass
class ContainerLog:
    """The log files of one container of one pod, and a way to wait for more output."""

    directory: Path
    restart: int = 0
    running: bool = False
    previous: int | None = None  # the run lastState.terminated describes (what `logs --previous` shows)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def path(self, restart: int) -> Path:
        return self.directory / f"{restart}.log"

    @property
    def current(self) -> Path:
        return self.path(self.restart)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def start_run(self, restart: int) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.restart = restart
        self.previous = restart - 1 if restart > 0 else None
        self.running = True
        self.notify()
        return self.current

    def end_run(self) -> None:
        self.running = False
        self.notify()


async def pump(reader: asyncio.StreamReader, stream: str, fd: int, log: ContainerLog,
               tap: Callable[[str, bytes], None] | None = None) -> None:
    """Copy one pipe of a container into its log file, line by line with timestamps; ``tap`` sees every chunk
    as it comes (attach)."""
    tag = stream.encode()
    pending = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        if tap is not None:
            tap(stream, chunk)
        pending += chunk
        out = []
        stamp = rfc3339_nano().encode()
        while True:
            nl = pending.find(b"\n")
            if nl < 0:
                break
            out.append(b"%s %s F %s\n" % (stamp, tag, pending[:nl]))
            pending = pending[nl + 1:]
        while len(pending) >= PARTIAL_LIMIT:
            out.append(b"%s %s P %s\n" % (stamp, tag, pending[:PARTIAL_LIMIT]))
            pending = pending[PARTIAL_LIMIT:]
        if out:
            os.write(fd, b"".join(out))
            log.notify()
    if pending:
        os.write(fd, b"%s %s F %s\n" % (rfc3339_nano().encode(), tag, pending))
        log.notify()


@dataclass
class LogOptions:
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    since: float | None = None  # epoch seconds
    timestamps: bool = False
    limit_bytes: int | None = None


def _render(line: bytes, timestamps: bool, since: float | None) -> bytes | None:
    parts = line.split(b" ", 3)
    if len(parts) < 4:
        return None
    stamp, _stream, tag, text = parts
    if since is not None and parse_rfc3339(stamp.decode()) < since:
        return None
    if tag == b"F":
        text = text + b"\n"
    return stamp + b" " + text if timestamps else text


def read_lines(path: Path, opts: LogOptions) -> tuple[list[bytes], int]:
    """Rendered lines of a finished part of a log file, and the byte offset read up to."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    rendered = [r for r in (_render(line, opts.timestamps, opts.since) for line in data[:end].splitlines())
                if r is not None]
    if opts.tail_lines is not None:
        rendered = rendered[-opts.tail_lines:] if opts.tail_lines > 0 else []
    return rendered, end


async def stream_log(log: ContainerLog, opts: LogOptions) -> AsyncIterator[bytes]:
    """The bytes ``kubectl logs`` shows for the run ``opts.previous`` selects, following when asked."""
    restart = (log.previous if log.previous is not None else log.restart - 1) if opts.previous else log.restart
    path = log.path(restart)
    budget = opts.limit_bytes
    lines, offset = read_lines(path, opts)

    def cut(data: bytes) -> bytes:
        nonlocal budget
        if budget is None:
            return data
        data = data[:budget]
        budget -= len(data)
        return data

    for line in lines:
        piece = cut(line)
        if piece:
            yield piece
        if budget == 0:
            return
    if not opts.follow or opts.previous:
        return
    pending = b""
    while True:
        waiter = log.changed
        finished = not log.running or log.restart != restart
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                fresh = fh.read()
        except FileNotFoundError:
            fresh = b""
        offset += len(fresh)
        pending += fresh
        while True:
            nl = pending.find(b"\n")
            if nl < 0:
                break
            rendered = _render(pending[:nl], opts.timestamps, opts.since)
            pending = pending[nl + 1:]
            if rendered:
                piece = cut(rendered)
                if piece:
                    yield piece
                if budget == 0:
                    return
        if finished and not fresh:
            return
        if not fresh:
            try:
                await asyncio.wait_for(waiter.wait(), 1.0)
            except TimeoutError:
                pass
