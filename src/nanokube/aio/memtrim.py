"""Hand the C heap's free pages back to the kernel now and then (glibc's malloc_trim).

CPython frees large objects (dict tables, bytes, lists) into glibc's heap, and glibc only gives back memory at
the very top of it. Start-up (imports, first lists, the OpenAPI documents kubectl fetches) leaves free
chunks all through the heap that stay resident for the life of the process. malloc_trim(0) releases every
free page inside them (MADV_DONTNEED); with the server's ~15 MB heap one call takes about a millisecond, so
it runs every `interval` seconds on the event loop. A no-op where the C library has no malloc_trim (musl).
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter itself is linked with
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


def trim() -> bool:
    """Release the free heap pages now; True when some memory was given back."""
    return bool(_malloc_trim(0)) if _malloc_trim is not None else False


async def trim_periodically(interval: float = 30.0, first_after: float = 5.0) -> None:
    """Runs until cancelled: a trim `first_after` seconds in (start-up is over), then every `interval`."""
    if _malloc_trim is None:
        await asyncio.Event().wait()
    await asyncio.sleep(first_after)
    while True:
        trim()
        await asyncio.sleep(interval)
