"""Connection counts per endpoint, read from the service proxy's status endpoint (GET /counters).

Over the proxy's 0600 Unix socket when there is one (no token needed), else its TCP port with the cluster token.
One read serves every open tab for MAX_AGE seconds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

MAX_AGE = 0.5
TIMEOUT = 2.0


def proxy_counters(*, socket: str | None, url: str, token: str | None) -> Callable[[], Awaitable[dict[str, Any]]]:
    last: tuple[float, dict[str, Any]] = (0.0, {})

    async def read() -> dict[str, Any]:
        nonlocal last
        now = time.monotonic()
        if now - last[0] < MAX_AGE:
            return last[1]
        connector = aiohttp.UnixConnector(path=socket) if socket else None
        headers = {} if socket else ({"Authorization": f"Bearer {token}"} if token else {})
        base = "http://localhost" if socket else url.rstrip("/")
        try:
            async with aiohttp.ClientSession(connector=connector, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session, \
                    session.get(base + "/counters") as resp:
                data = await resp.json(content_type=None) if resp.status == 200 else {"error": f"HTTP {resp.status}"}
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as err:
            data = {"error": type(err).__name__}
        data["at"] = time.time()
        last = (now, data)
        return data

    return read
