"""The one poll loop of the tests, for state a test can only observe by asking (a socket, kubectl, a file).

Where the code under test offers an event or a counter, wait on that instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# What a check may raise while the state it waits for is not there yet.
NOT_YET: tuple[type[BaseException], ...] = (AssertionError, OSError, ValueError, KeyError)


def eventually(check: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> T:
    """Call `check` until it returns something truthy and return that; on timeout, fail with the last value
    or the last NOT_YET exception it raised."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
        except NOT_YET as err:
            last = err
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last: {last!r}")
        time.sleep(interval)


async def eventually_async(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """eventually() for tests running on the event loop: the loop keeps running between checks."""
    async with asyncio.timeout(timeout):
        while not (value := check()):
            await asyncio.sleep(interval)
        return value
