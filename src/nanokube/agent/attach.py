"""`kubectl attach` (and `run -i`, `debug -it`): a channel WebSocket joined to a running container's own
stdin/terminal and live output, until the container exits or the client detaches."""

from __future__ import annotations

import asyncio

from nanokube.agent import channels
from nanokube.agent.channels import ChannelSocket
from nanokube.agent.process import ContainerProcess
from nanokube.agent.stdio import ContainerStdio


async def _send_output(sock: ChannelSocket, queue: asyncio.Queue[tuple[str, bytes] | None], want_out: bool,
                       want_err: bool, tty: bool) -> None:
    while (item := await queue.get()) is not None:
        stream, chunk = item
        if stream == "stdout" or tty:
            if want_out:
                await sock.send(channels.STDOUT, chunk)
        elif want_err:
            await sock.send(channels.STDERR, chunk)


async def _receive(sock: ChannelSocket, stdio: ContainerStdio, use_stdin: bool) -> bool:
    """Client messages into the container; returns whether any input was sent."""
    sent = False
    async for channel, payload in sock.messages():
        if channel == channels.STDIN and use_stdin and stdio.writer is not None and payload:
            sent = True
            await stdio.writer.write(payload)
        elif channel == channels.RESIZE:
            size = channels.parse_resize(payload)
            if size:
                stdio.resize(*size)
        elif channel == channels.CLOSE and sock.v5 and payload[:1] == b"\x00" and use_stdin:
            sent = True
            if stdio.stdin_once and not stdio.tty and stdio.writer is not None:
                stdio.writer.close()
    return sent


async def run(sock: ChannelSocket, target: ContainerProcess, *, stdin: bool, stdout: bool, stderr: bool) -> None:
    stdio = target.stdio
    if stdio is None:
        await sock.send_status(channels.failure("container has no attachable stdio"))
        return
    queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()

    def listener(stream: str, chunk: bytes) -> None:
        queue.put_nowait((stream, chunk))

    for item in stdio.subscribe(listener):
        queue.put_nowait(item)
    sender = asyncio.ensure_future(_send_output(sock, queue, stdout, stderr, stdio.tty))
    receiver = asyncio.ensure_future(_receive(sock, stdio, stdin))
    exited = asyncio.ensure_future(target.exited.wait())
    sent_input = False
    try:
        await asyncio.wait([receiver, exited], return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            stdio.listeners.discard(listener)
            queue.put_nowait(None)
            await sender  # everything the container wrote before it exited
            await sock.send_status(channels.success())
        if receiver.done() and not receiver.cancelled():
            sent_input = receiver.result()
    finally:
        for task in (sender, receiver, exited):
            task.cancel()
        await asyncio.gather(sender, receiver, exited, return_exceptions=True)
        stdio.unsubscribe(listener, sent_input or (stdin and stdio.writer is not None))
