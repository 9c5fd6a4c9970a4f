"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's tools/leaderelection does it
(leaderelection.go, resourcelock/leaselock.go).

- A candidate trusts its own clock only: it remembers when it last saw the Lease record *change* and treats
  the holder as alive until that moment + leaseDurationSeconds (clock skew between hosts does not matter).
- Every write is an Update of the last Lease read, so it is optimistic on resourceVersion: of two candidates
  racing for an expired Lease, one gets 409 Conflict and stays a follower.
- The leader renews every retry period; if no renewal succeeds for renew_deadline it stops leading at once
  (its work is cancelled before another candidate can take over: renew_deadline < lease_duration).
- On a clean stop the leader releases the Lease (no holder, leaseDurationSeconds 1), so another takes over
  without waiting out the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp

from nanokube.api.errors import ApiError
from nanokube.api.meta import rfc3339_micro
from nanokube.api.served_resources import by_kind
from nanokube.client.rest import ApiClient

log = logging.getLogger(__name__)

LEASES = by_kind("coordination.k8s.io", "Lease")
JITTER = 1.2  # client-go's JitterFactor




@dataclass
class ElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LeaderElector:
    def __init__(self, client: ApiClient, config: ElectionConfig, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.config = config
        self._clock = clock
        self._record: dict[str, Any] | None = None  # the Lease as last read or written
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self.is_leader = False

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = rfc3339_micro()
        spec = {"holderIdentity": self.config.identity,
                "leaseDurationSeconds": max(1, round(self.config.lease_duration)),
                "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
        if previous is not None:
            if previous.get("holderIdentity") == self.config.identity:
                spec["acquireTime"] = previous.get("acquireTime", now)
                spec["leaseTransitions"] = previous.get("leaseTransitions", 0)
            else:
                spec["leaseTransitions"] = int(previous.get("leaseTransitions") or 0) + 1
        return spec

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_at = self._clock()
        self._record = lease

    async def try_acquire_or_renew(self) -> bool:
        cfg = self.config
        if self.is_leader and self._record is not None:  # fast path: update the Lease we wrote last
            lease = {**self._record, "spec": self._spec(self._record.get("spec") or {})}
            try:
                self._observe(await self.client.update(LEASES, lease))
                return True
            except ApiError as err:
                if err.code not in (404, 409):
                    raise
        try:
            current = await self.client.get(LEASES, cfg.name, cfg.namespace)
        except ApiError as err:
            if err.code != 404:
                raise
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": cfg.name, "namespace": cfg.namespace}, "spec": self._spec(None)}
            try:
                self._observe(await self.client.create(LEASES, lease))
                return True
            except ApiError as create_err:
                if create_err.code == 409:
                    return False
                raise
        self._observe(current)
        spec = current.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
        if holder and holder != cfg.identity and self._clock() < self._observed_at + duration:
            return False  # held by someone alive, as far as this candidate has seen
        lease = {**current, "spec": self._spec(spec)}
        try:
            self._observe(await self.client.update(LEASES, lease))
        except ApiError as err:
            if err.code == 409:
                return False
            raise
        return True

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except (TimeoutError, ApiError, OSError, aiohttp.ClientError) as exc:
            log.info("leader election %s/%s: %s", self.config.namespace, self.config.name, exc)
            return False

    async def acquire(self, on_standby: Callable[[], None] | None = None) -> None:
        """Return once this candidate holds the Lease (`on_standby` is called when a first attempt fails)."""
        while not await self._attempt():
            if on_standby is not None:
                on_standby()
                on_standby = None
            await asyncio.sleep(self.config.retry_period * random.uniform(1.0, JITTER))
        self.is_leader = True
        log.info("%s is now the leader of %s/%s", self.config.identity, self.config.namespace, self.config.name)

    async def renew_until_lost(self) -> None:
        """Renew every retry period; return when no renewal succeeded for renew_deadline."""
        cfg = self.config
        last_renewed = self._clock()
        while True:
            await asyncio.sleep(cfg.retry_period)
            try:
                async with asyncio.timeout(max(0.1, last_renewed + cfg.renew_deadline - self._clock())):
                    renewed = await self._attempt()
            except TimeoutError:
                renewed = False
            if renewed:
                last_renewed = self._clock()
            elif self._clock() - last_renewed >= cfg.renew_deadline or not self._holds():
                self.is_leader = False
                log.warning("%s lost the lease %s/%s", cfg.identity, cfg.namespace, cfg.name)
                return

    def _holds(self) -> bool:
        spec = (self._record or {}).get("spec") or {}
        return spec.get("holderIdentity") == self.config.identity

    async def release(self) -> None:
        """Give the Lease up (ReleaseOnCancel): no holder, duration 1 s."""
        if not self.is_leader or self._record is None:
            return
        self.is_leader = False
        spec = {**(self._record.get("spec") or {}), "holderIdentity": None, "leaseDurationSeconds": 1,
                "renewTime": rfc3339_micro()}
        with contextlib.suppress(TimeoutError, ApiError, OSError, aiohttp.ClientError):
            async with asyncio.timeout(self.config.renew_deadline):
                await self.client.update(LEASES, {**self._record, "spec": spec})


async def run_while_leading(elector: LeaderElector, work: Callable[[], Coroutine[Any, Any, None]],
                            on_standby: Callable[[], None] | None = None) -> None:
    """Run `work` only while `elector` leads: start it on acquiring the Lease, cancel it the moment the Lease is
    lost, then stand by again. Releases the Lease when cancelled. An exception of `work` propagates."""
    try:
        while True:
            await elector.acquire(on_standby)
            worker = asyncio.create_task(work(), name=f"leading {elector.config.name}")
            renewer = asyncio.create_task(elector.renew_until_lost(), name=f"renewing {elector.config.name}")
            try:
                done, _ = await asyncio.wait({worker, renewer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (worker, renewer):
                    task.cancel()
                for task in (worker, renewer):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if worker in done:
                worker.result()  # raises the work's exception; a clean return ends leading
                return
    finally:
        await asyncio.shield(elector.release())
