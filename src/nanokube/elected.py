"""The controllers (with the scheduler and the LoadBalancer/node-CIDR allocators among them) of a server that
shares its store with others: they act only while this server holds the kube-system/kube-controller-manager
Lease, as kube-controller-manager does with --leader-elect."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

from nanokube.client import ApiClient
from nanokube.client.leader_election import ElectionConfig, LeaderElector, run_while_leading
from nanokube.settings import ServerSettings


def identity(settings: ServerSettings) -> str:
    """`<node name>_<uuid>` as kube-controller-manager's, kept in the data dir: a server restarted on the same
    data dir is the same candidate and takes its Lease back at once instead of waiting for it to expire."""
    path = settings.data_dir / "identity"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = f"{settings.node_name}_{uuid.uuid4()}"
        path.write_text(value + "\n")
        return value


async def elected(settings: ServerSettings, client: ApiClient, controllers: Coroutine[Any, Any, Any],
                  ready: asyncio.Event) -> None:
    """Run `controllers` (built once, started on every acquisition) while leading; `ready` is set once they
    run, or at once when another server leads (this one is a ready standby)."""
    le = settings.control_plane.leader_election
    elector = LeaderElector(client, ElectionConfig(
        namespace=le.namespace, name=le.name, identity=identity(settings), lease_duration=le.lease_duration,
        renew_deadline=le.renew_deadline, retry_period=le.retry_period))
    pending: list[Coroutine[Any, Any, Any]] = [controllers]
    factory = _controllers_factory(settings, client, pending, ready)
    try:
        await run_while_leading(elector, factory, on_standby=ready.set)
    finally:
        for coro in pending:
            coro.close()


def _controllers_factory(settings: ServerSettings, client: ApiClient, pending: list[Coroutine[Any, Any, Any]],
                         ready: asyncio.Event) -> Any:
    from nanokube.controllers import ControllerSettings, run_controllers

    def start() -> Coroutine[Any, Any, Any]:
        if pending:
            return pending.pop()
        # leading again after losing the Lease: fresh controllers (fresh informers, nothing stale)
        return run_controllers(client=client, ready=ready, settings=ControllerSettings(
            lb_pool=settings.lb_pool, data_dir=settings.data_dir,
            node_monitor_grace_period=settings.node_monitor_grace_period, pod_cidr=settings.pod_cidr,
            reserved_pod_cidrs={settings.node_name: settings.node_pod_cidr}))

    return start
