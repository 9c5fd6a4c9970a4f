"""Keep CPython's full (generation 2) garbage collections short.

Informer caches hold 100,000s of small dicts that live as long as the process. Each full collection walks
all of them: 25-120 ms with 1,000 Services and 1,100 pods, a pause for everything on the event loop (it
was the whole p99 tail of pod Ready -> EndpointSlice written). Objects that survived a full collection
are long-lived by definition, so after each one they are moved to the permanent generation (gc.freeze)
and later full collections only walk what is newer. Frozen objects that later become cyclic garbage are
not reclaimed, so every `rescan_after` seconds they are handed back for one complete collection.

Process-wide: installed once, by whichever component asks first.
"""

from __future__ import annotations

import gc
import time
from typing import Any

_installed = False


def install(rescan_after: float = 600.0) -> None:
    global _installed
    if _installed:
        return
    _installed = True
    last_rescan = time.monotonic()

    def after_collection(phase: str, info: dict[str, Any]) -> None:
        nonlocal last_rescan
        if phase != "stop" or info.get("generation") != 2:
            return
        if time.monotonic() - last_rescan >= rescan_after:
            last_rescan = time.monotonic()
            gc.unfreeze()  # the next full collection walks everything once
        else:
            gc.freeze()

    gc.callbacks.append(after_collection)
