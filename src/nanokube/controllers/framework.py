"""What every controller shares: shared informers, the event recorder, and the worker loop.

A controller's informer handlers only put keys on its work queue; its workers pull a key, re-read the
object from the informer cache and converge the cluster towards it (level-triggered, idempotent). A sync
that fails is retried with per-key exponential backoff; a sync may ask to be looked at again later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import Resource
from nanokube.client import ApiClient, Informer
from nanokube.controllers.events import EventRecorder
from nanokube.controllers.settings import ControllerSettings
from nanokube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)


class Context:
    """Built once by `run_controllers`; informers are shared between controllers by resource."""

    def __init__(self, client: ApiClient, settings: ControllerSettings) -> None:
        self.client = client
        self.settings = settings
        self.recorder = EventRecorder(client)
        self.informers: dict[tuple[str, str | None], Informer] = {}

    def informer(self, resource: Resource, namespace: str | None = None) -> Informer:
        key = (f"{resource.group}/{resource.plural}", namespace)
        informer = self.informers.get(key)
        if informer is None:
            informer = self.informers[key] = Informer(self.client, resource, namespace)
        return informer


class Controller:
    """Base class: subclasses register handlers in __init__ and implement `sync(key)`."""

    name = "controller"
    workers = 1

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.queue = WorkQueue()

    def event(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        self.ctx.recorder.event(obj, event_type, reason, message, component=self.name)

    async def start(self) -> None:
        """Runs once after every informer has synced, before the workers start."""

    async def sync(self, key: Any) -> float | None:
        """Converge one key. Returns seconds after which to look again, or None."""
        raise NotImplementedError

    async def run(self) -> None:
        await self.start()
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(self.workers):
                    tg.create_task(self._worker(), name=f"controllers: {self.name} worker {i}")
        finally:
            self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                again = await self.sync(key)
            except ApiError as err:
                self._retry(key, err, quiet=err.code in (404, 409))
            except (OSError, TimeoutError) as err:
                self._retry(key, err, quiet=True)
            except Exception:
                log.exception("%s: syncing %s failed", self.name, key)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                self.queue.done(key)

    def _retry(self, key: Hashable, err: Exception, *, quiet: bool) -> None:
        level = logging.DEBUG if quiet or self.queue.failures(key) < 3 else logging.WARNING
        log.log(level, "%s: syncing %s: %s (will retry)", self.name, key, err)
        self.queue.add_rate_limited(key)
