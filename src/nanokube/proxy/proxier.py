"""The proxy's core, independent of the backend: handlers feed trackers, one runner syncs.

Handlers (`on_service_*`, `on_endpointslice_*`) only record and poke the runner. `sync()` does nothing
until Services and EndpointSlices have both been listed; then it checks the changes out, re-plans the
changed Services and hands the difference to the backend. Any failure makes the next sync a full one
(the checked-out changes are already folded into the state, so a full sync loses nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from nanokube.aio.runner import BoundedFrequencyRunner
from nanokube.api.meta import Obj
from nanokube.proxy.plan import ServicePortPlan
from nanokube.proxy.state import PlanChange, ProxyState
from nanokube.proxy.status import ProxyStatus, ServiceProgramState
from nanokube.proxy.trackers import EndpointsChangeTracker, ServiceChangeTracker

log = logging.getLogger(__name__)

UNSERVED_RETRY_INTERVAL = 2.0  # seconds


class Backend(Protocol):
    # frontends (address, protocol, port) it should serve but cannot, with why (a port another process holds);
    # a sync with nothing else to do still calls apply({}) while this is not empty, so they are retried
    unserved: dict[tuple[str, str, int], str]

    async def full_sync(self, plans: dict[str, tuple[ServicePortPlan, ...]]) -> None: ...
    async def apply(self, changes: dict[str, PlanChange]) -> None: ...
    async def intact(self) -> bool: ...  # is what it programmed still in place? (periodic syncs; False -> full sync)
    async def stop(self) -> None: ...


class Proxier:
    def __init__(self, *, state: ProxyState, backend: Backend, status: ProxyStatus | None = None,
                 min_sync_interval: float = 0.0, max_sync_interval: float = 30.0) -> None:
        self.state = state
        self.backend = backend
        self.status = status or ProxyStatus()
        self.services = ServiceChangeTracker()
        self.endpoints = EndpointsChangeTracker()
        self.services_synced = False
        self.endpoints_synced = False
        self.need_full = True
        self.synced_once = asyncio.Event()
        self.after_sync: list[Callable[[], Awaitable[None]]] = []  # run after every successful sync (health checks)
        self._retry: asyncio.TimerHandle | None = None
        self.runner = BoundedFrequencyRunner(self.sync, name="proxy sync", min_interval=min_sync_interval,
                                             max_interval=max_sync_interval)

    # -- handlers: record and poke; never I/O ------------------------------------------------------------
    def on_service_add(self, obj: Obj) -> None:
        self.on_service_update(None, obj)

    def on_service_update(self, old: Obj | None, new: Obj | None) -> None:
        if self.services.update(old, new):
            self.status.queued()
            self.runner.request()

    def on_service_delete(self, obj: Obj) -> None:
        self.on_service_update(obj, None)

    def on_services_synced(self) -> None:
        self.services_synced = True
        self.runner.request()

    def on_endpointslice_add(self, obj: Obj) -> None:
        self.on_endpointslice_update(None, obj)

    def on_endpointslice_update(self, old: Obj | None, new: Obj | None) -> None:
        if self.endpoints.update(old, new):
            self.status.queued()
            self.runner.request()

    def on_endpointslice_delete(self, obj: Obj) -> None:
        self.on_endpointslice_update(obj, None)

    def on_endpointslices_synced(self) -> None:
        self.endpoints_synced = True
        self.runner.request()

    def request_full_sync(self) -> None:
        self.need_full = True
        self.runner.request()

    # -- the sync -------------------------------------------------------------------------------------
    async def sync(self) -> None:
        if not (self.services_synced and self.endpoints_synced):
            return
        changes = self.state.apply(self.services.checkout(), self.endpoints.checkout())
        now = time.time()
        full = self.need_full
        unserved = self.backend.unserved
        try:
            # A periodic sync checks that what we programmed is still there (`nft flush ruleset`, a firewall
            # reload remove it); a check that fails is a failed sync, so the next one is a full one.
            if not full and not changes and not unserved and not await self.backend.intact():
                log.warning("proxy: the programmed rules were removed or changed from outside; full resync")
                full = True
            if full:
                self.need_full = True  # stays set if the full sync fails
                await self.backend.full_sync(self.state.plans)
                self.need_full = False
            elif changes or unserved:
                await self.backend.apply(changes)  # with no changes: the backend retries the ports it could not open
        except Exception as err:
            self.need_full = True
            self.status.last_error = f"{type(err).__name__}: {err}"[:500]
            raise
        self.status.syncs += 1
        self.status.unserved = dict(self.backend.unserved)
        if self.status.unserved and (self._retry is None or self._retry.when() <= asyncio.get_running_loop().time()):
            # a port someone else holds is tried again soon, not only at the next periodic sync
            self._retry = asyncio.get_running_loop().call_later(UNSERVED_RETRY_INTERVAL, self.runner.request)
        self.status.updated(now)
        self.status.last_error = ""
        if full:
            self.status.last_full_sync = now
            self.status.services = {}
            for key, plans in self.state.plans.items():
                self._record(key, plans, now)
        else:
            for key, (_, new) in changes.items():
                self._record(key, new, now)
        for hook in self.after_sync:
            await hook()
        self.synced_once.set()

    def _record(self, key: str, plans: tuple[ServicePortPlan, ...], now: float) -> None:
        if plans:
            self.status.services[key] = ServiceProgramState.of(plans, now)
        else:
            self.status.services.pop(key, None)

    async def run(self) -> None:
        await self.runner.run()
