"""Reading the kernel's per-element connection counters of table `ip nanokube` (set endpoint-connections).

One `nft -j list set` (in-process through libnftables when installed) per read, whatever the number of
Services; reads within MAX_AGE seconds share the last one, so any number of scrapers and UI tabs cost the
kernel one dump a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from nanokube.proxy.nftrules import COUNTERS_SET, FAMILY, TABLE

MAX_AGE = 1.0
LIST_COMMAND = f"list set {FAMILY} {TABLE} {COUNTERS_SET}"

FrontendKey = tuple[str, str, int]
Counts = dict[FrontendKey, dict[tuple[str, int], int]]


def parse_counters(text: str) -> Counts:
    """`nft -j list set` output -> new connections per frontend (ip, PROTOCOL, port) and endpoint (ip, port)."""
    out: Counts = {}
    for item in orjson.loads(text).get("nftables", ()):
        for elem in (item.get("set") or {}).get("elem", ()):
            inner: Any = elem.get("elem", elem) if isinstance(elem, dict) else {}
            parts = (inner.get("val") or {}).get("concat") if isinstance(inner, dict) else None
            counter = inner.get("counter") if isinstance(inner, dict) else None
            if not parts or len(parts) != 5 or not counter:
                continue
            ip, proto, port, ep_ip, ep_port = parts
            per = out.setdefault((ip, str(proto).upper(), int(port)), {})
            per[(ep_ip, int(ep_port))] = int(counter.get("packets", 0))
    return out


class CounterReader:
    """Cached reads of the counters; `list_json` runs one `nft -j` command (Commands.list_json)."""

    def __init__(self, list_json: Callable[[str], Awaitable[str]], *, max_age: float = MAX_AGE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._list_json = list_json
        self.max_age = max_age
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last: tuple[float, Counts] | None = None

    def forget(self) -> None:
        """Drop the cached read (the table was rebuilt: its counts restarted)."""
        self._last = None

    async def read(self) -> Counts:
        async with self._lock:  # concurrent scrapes wait for the one dump in flight
            now = self._clock()
            if self._last is not None and now - self._last[0] < self.max_age:
                return self._last[1]
            counts = parse_counters(await self._list_json(LIST_COMMAND))
            self._last = (self._clock(), counts)
            return counts
