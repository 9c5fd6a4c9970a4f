"""One HTTP/1.1 request per connection, for the small listeners (the proxy's status port, the DNS metrics port):
read the head, answer it, close. Bodies of requests are never read; these ports only serve GET and HEAD."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from http import HTTPStatus

HEAD_TIMEOUT = 10.0

# (the raw request head, its first line split: [method, target, version]) -> (status, content type, body)
Responder = Callable[[bytes, list[str]], Awaitable[tuple[int, str, bytes]]]


async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, respond: Responder,
                      timeout: float = HEAD_TIMEOUT) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(request_line) < 2:
            code, content_type, body = 400, "text/plain; charset=utf-8", b"bad request\n"
        else:
            code, content_type, body = await respond(head, request_line)
        writer.write(f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nContent-Type: {content_type}\r\n"
                     f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode() + (b"" if request_line[:1] == ["HEAD"] else body))
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
