"""Reading the kernel's per-element connection counters of table `ip nanokube` (set endpoint-connections).

One dump of the set per read, whatever the number of Services: over nfnetlink (nftnetlink.py), or, where
that fails, `nft -j list set` (parse_counters; seconds for tens of thousands of elements). Reads within
MAX_AGE seconds share the last one, so any number of scrapers and UI tabs cost the kernel one dump a second
(or fewer, when one dump takes long: see CounterReader.cost_factor).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from nanokube.proxy.nftrules import COUNTERS_SET, FAMILY, TABLE

MAX_AGE = 1.0
COST_FACTOR = 10.0  # so reading costs at most ~10 % of one core, however many elements
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
    """Cached reads of the counters; `read_kernel` does one read of the whole set."""

    def __init__(self, read_kernel: Callable[[], Awaitable[Counts]], *, max_age: float = MAX_AGE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read_kernel = read_kernel
        self.max_age = max_age
        # A read is served again for COST_FACTOR times as long as it took, if that is longer than max_age: tens
        # of thousands of elements take a few hundred ms to dump and parse, and a UI tab asks every second.
        self.cost_factor = COST_FACTOR
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last: tuple[float, Counts] | None = None
        self._took = 0.0  # how long the last read took

    def forget(self) -> None:
        """Drop the cached read (the table was rebuilt: its counts restarted)."""
        self._last = None

    async def read(self) -> Counts:
        async with self._lock:  # concurrent scrapes wait for the one dump in flight
            now = self._clock()
            if self._last is not None and now - self._last[0] < max(self.max_age, self.cost_factor * self._took):
                return self._last[1]
            counts = await self._read_kernel()
            done = self._clock()
            self._took = done - now
            self._last = (done, counts)
            return counts
