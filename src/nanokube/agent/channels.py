"""The channel protocols of exec and attach over WebSocket (k8s.io/apimachinery wsstream), as the kubelet
speaks them: one channel byte then the payload in binary messages (``v5``/``v4``/``channel.k8s.io``), or
a text message of ``'0'+channel`` then base64 (the ``base64`` variants).

Channels: 0 stdin, 1 stdout, 2 stderr, 3 error (a Status in v4/v5, plain text before), 4 resize,
255 CLOSE (v5: ``FF <channel>`` half-closes that channel).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
# the kubelet's preference order; a client's first acceptable offer wins
EXEC_PROTOCOLS = (V5, V4, "v4.base64.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                  "channel.k8s.io", "base64.channel.k8s.io")
CHUNK = 32 * 1024  # kubectl's own buffer size; keeps every message small for a slow reader
MAX_MESSAGE = 64 * 1024 * 1024  # the Python client sends a whole write_stdin() as one message


def offered(request: web.Request) -> list[str]:
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def choose(request: web.Request, supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offers that we speak; "" when it offers none (the legacy default)."""
    offers = offered(request)
    if not offers:
        return ""
    return next((p for p in offers if p in supported), None)


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket" and \
        "upgrade" in request.headers.get("Connection", "").lower()


class ChannelSocket:
    """A WebSocket speaking one of the channel protocols."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.base64 = "base64" in protocol
        self.status_json = protocol in (V5, V4, "v4.base64.channel.k8s.io")
        self.v5 = protocol == V5

    async def send(self, channel: int, data: bytes) -> None:
        for start in range(0, max(len(data), 1), CHUNK):
            piece = data[start:start + CHUNK]
            if self.base64:
                await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(piece).decode())
            else:
                await self.ws.send_bytes(bytes((channel,)) + piece)

    async def send_status(self, status: dict[str, Any]) -> None:
        if self.status_json:
            await self.send(ERROR, json.dumps(status).encode())
        elif status.get("status") != "Success":
            await self.send(ERROR, (status.get("message") or "").encode())

    async def messages(self) -> AsyncIterator[tuple[int, bytes]]:
        """(channel, payload) for every data message until the client closes."""
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                data: bytes = msg.data
                if data:
                    yield data[0], data[1:]
            elif msg.type == aiohttp.WSMsgType.TEXT:
                text: str = msg.data
                if not text:
                    continue
                if self.base64:
                    try:
                        yield ord(text[0]) - ord("0"), base64.b64decode(text[1:])
                    except ValueError:
                        continue
                else:
                    raw = text.encode()
                    yield raw[0], raw[1:]
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                return


def success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int, argv: list[str]) -> dict[str, Any]:
    """The Status the kubelet writes for a command that exited non-zero (kubectl reads the cause)."""
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {_go_list(argv)}, "
                       f"exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure(message: str, reason: str = "InternalError", code: int = 500) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """(columns, rows) of one resize message: Go's JSON of {"Width":..,"Height":..}, keys case-insensitive."""
    try:
        obj = json.loads(payload.decode().strip() or "null")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    keys = {k.lower(): v for k, v in obj.items()}
    width, height = keys.get("width"), keys.get("height")
    if not isinstance(width, int) or not isinstance(height, int):
        return None
    return max(0, min(width, 65535)), max(0, min(height, 65535))
