"""Named guarded tasks: the first root task to end (or fail) stops all the others, loudly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class ComponentFailed(RuntimeError):
    pass


async def run_root_tasks(named: dict[str, Coroutine[Any, Any, Any]], *, stop: asyncio.Event,
                         grace: float = 8.0) -> None:
    """Run every coroutine as a named task until `stop` is set or one of them ends.

    A task that ends on its own is a failure of the whole process (a component must never
    half-run); its exception is re-raised as ComponentFailed after the others are cancelled.
    """
    tasks = {asyncio.create_task(coro, name=name): name for name, coro in named.items()}
    stopper = asyncio.create_task(stop.wait(), name="stop signal")
    failure: BaseException | None = None
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is stopper:
                continue
            name = tasks[task]
            exc = task.exception() if not task.cancelled() else None
            if exc is not None:
                log.error("component %r failed: %r", name, exc, exc_info=exc)
                failure = ComponentFailed(f"{name}: {exc}")
                failure.__cause__ = exc
            else:
                log.error("component %r exited unexpectedly", name)
                failure = ComponentFailed(f"{name} exited")
    finally:
        stopper.cancel()
        # Stop in reverse start order so consumers go before what they depend on.
        for task in reversed(list(tasks)):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(task), grace)
                if not task.done():
                    log.warning("component %r did not stop within %.0fs", tasks[task], grace)
    if failure is not None:
        raise failure


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """asyncio.run(main(stop)) on uvloop when installed, with SIGINT/SIGTERM setting `stop`."""
    import signal

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())
