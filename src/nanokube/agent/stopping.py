"""Stopping a pod's containers: preStop hooks, SIGTERM, SIGKILL once the grace period has run out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from nanokube.agent.container import MIN_GRACE, ContainerRun
from nanokube.agent.probes import Target, run_action


async def stop_containers(containers: Iterable[ContainerRun], grace: float,
                          target_for: Callable[[ContainerRun], Target], *, hooks: bool = True) -> None:
    """Stop every running container at once; each one's preStop hook counts against its grace period."""
    async def stop_one(c: ContainerRun) -> None:
        c.stop_probers()
        proc = c.proc
        if proc is None or not proc.running:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        pre_stop = (c.spec.get("lifecycle") or {}).get("preStop")
        if hooks and pre_stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run_action(pre_stop, target_for(c), grace), grace)
        await proc.stop(max(deadline - loop.time(), min(MIN_GRACE, grace)))

    await asyncio.gather(*(stop_one(c) for c in containers))
