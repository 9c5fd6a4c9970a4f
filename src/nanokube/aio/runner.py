"""A coalescing, bounded-frequency runner (kube-proxy's BoundedFrequencyRunner) for a sync that rebuilds one
whole view: the proxy's. Keyed work (a controller's objects) goes through controllers/workqueue.py instead.

Contract:
- `request()` asks for a run; any number of requests before the run starts collapse into one.
- Two runs start at least `min_interval` apart; a run happens at least every `max_interval` even
  without requests (a periodic resync).
- When the function raises, the runner logs it and tries again after a backoff that starts at
  `retry_initial` and doubles up to `max_interval`; a request during the backoff does not shorten it
  below `min_interval`.
- `run()` loops until cancelled. Requests are plain synchronous calls, safe from event handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class BoundedFrequencyRunner:
    def __init__(self, fn: Callable[[], Awaitable[None]], *, name: str, min_interval: float = 0.0,
                 max_interval: float = 30.0, retry_initial: float = 0.1) -> None:
        if min_interval < 0 or max_interval <= 0 or min_interval > max_interval:
            raise ValueError("need 0 <= min_interval <= max_interval and max_interval > 0")
        self._fn = fn
        self.name = name
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.retry_initial = retry_initial
        self._wake = asyncio.Event()
        self._retry_at: float | None = None
        self._failures = 0
        self.runs = 0
        self.failures_total = 0

    def request(self) -> None:
        self._wake.set()

    @property
    def failing(self) -> bool:
        return self._failures > 0

    async def _wait_until(self, deadline: float, *, wakeable: bool) -> None:
        loop = asyncio.get_running_loop()
        delay = deadline - loop.time()
        if delay <= 0:
            return
        if not wakeable:
            await asyncio.sleep(delay)
            return
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except TimeoutError:
            pass

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_start = -float("inf")
        while True:
            now = loop.time()
            if self._retry_at is not None:
                # Failed last time: wait for the retry time (a request cannot bring it forward).
                await self._wait_until(self._retry_at, wakeable=False)
            else:
                await self._wait_until(now + self.max_interval, wakeable=True)
                await self._wait_until(last_start + self.min_interval, wakeable=False)
            self._wake.clear()
            last_start = loop.time()
            self.runs += 1
            try:
                await self._fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._failures += 1
                self.failures_total += 1
                backoff = min(self.max_interval, self.retry_initial * 2 ** (self._failures - 1))
                self._retry_at = loop.time() + max(backoff, self.min_interval)
                log.exception("%s failed (attempt %d); retrying in %.2fs", self.name, self._failures, backoff)
            else:
                self._failures = 0
                self._retry_at = None
