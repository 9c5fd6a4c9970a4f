"""The leader elector (client-go's rules) against a real API server: one leader at a time, takeover only
after the lease ran out by the follower's own clock, renewals keeping it, release handing over at once."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import api_server  # noqa: F401  (the module-scoped control-plane-only server)

from nanokube.client import client_from_kubeconfig
from nanokube.client.leader_election import LEASES, ElectionConfig, LeaderElector, run_while_leading


def elector(server, name: str, who: str, **timing: float) -> LeaderElector:  # type: ignore[no-untyped-def]
    client = client_from_kubeconfig(str(server.kubeconfig))
    config = ElectionConfig("kube-system", name, who, **{"lease_duration": 2.0, "renew_deadline": 1.5,
                                                         "retry_period": 0.2, **timing})
    return LeaderElector(client, config)


async def test_one_leader_takeover_after_expiry_and_release(api_server) -> None:  # noqa: F811
    a, b = elector(api_server, "le-basic", "a"), elector(api_server, "le-basic", "b")
    try:
        assert await a.try_acquire_or_renew()
        a.is_leader = True
        assert not await b.try_acquire_or_renew()  # held, and b has just seen it change
        assert await a.try_acquire_or_renew()  # the leader renews
        lease = await a.client.get(LEASES, "le-basic", "kube-system")
        assert lease["spec"]["holderIdentity"] == "a" and lease["spec"]["leaseTransitions"] == 0
        # a stops renewing: b takes over only once the lease ran out since b last saw a change
        started = time.monotonic()
        while not await b.try_acquire_or_renew():
            await asyncio.sleep(0.1)
        assert time.monotonic() - started >= 1.9
        lease = await b.client.get(LEASES, "le-basic", "kube-system")
        assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
        # a's stale fast-path renewal loses on resourceVersion (409), so a does not think it leads
        assert not await a.try_acquire_or_renew()
        b.is_leader = True
        await b.release()
        assert await a.try_acquire_or_renew()  # released: no waiting
    finally:
        await a.client.close()
        await b.client.close()


async def test_work_runs_only_while_leading(api_server) -> None:  # noqa: F811
    a, b = elector(api_server, "le-work", "a"), elector(api_server, "le-work", "b")
    running: list[str] = []
    overlaps: list[list[str]] = []

    def work(who: str):  # type: ignore[no-untyped-def]
        async def body() -> None:
            running.append(who)
            try:
                while True:
                    if len(running) > 1:
                        overlaps.append(list(running))
                    await asyncio.sleep(0.05)
            finally:
                running.remove(who)
        return body

    try:
        first = asyncio.create_task(run_while_leading(a, work("a")))
        async with asyncio.timeout(10):
            while running != ["a"]:
                await asyncio.sleep(0.05)
        standby = asyncio.Event()
        second = asyncio.create_task(run_while_leading(b, work("b"), on_standby=standby.set))
        async with asyncio.timeout(10):
            await standby.wait()
        first.cancel()  # a stops cleanly: it releases the lease and b takes over without waiting it out
        await asyncio.gather(first, return_exceptions=True)
        started = time.monotonic()
        async with asyncio.timeout(10):
            while running != ["b"]:
                await asyncio.sleep(0.05)
        assert time.monotonic() - started < 1.5
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        assert overlaps == []
    finally:
        await a.client.close()
        await b.client.close()
