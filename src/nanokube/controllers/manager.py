"""Starts every controller once all shared informers have synced; runs until cancelled."""

from __future__ import annotations

import asyncio
import logging

from nanokube.client import ApiClient
from nanokube.controllers.cronjob import CronJobController
from nanokube.controllers.daemonset import DaemonSetController
from nanokube.controllers.deployment import DeploymentController
from nanokube.controllers.disruption import DisruptionController
from nanokube.controllers.dnsendpoints import DnsEndpointsReadinessController
from nanokube.controllers.endpoints_controller import EndpointsController
from nanokube.controllers.endpointslice_controller import EndpointSliceController
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.gc import GarbageCollector
from nanokube.controllers.job import JobController
from nanokube.controllers.localpath import LocalPathProvisioner
from nanokube.controllers.mirroring import MirroringController
from nanokube.controllers.namespace import NamespaceController
from nanokube.controllers.nodeipam import NodeIpamController
from nanokube.controllers.nodelifecycle import NodeLifecycleController
from nanokube.controllers.replicaset import ReplicaSetController
from nanokube.controllers.replication import ReplicationManager
from nanokube.controllers.resourcequota import ResourceQuotaController
from nanokube.controllers.resources import PODS, SERVICES
from nanokube.controllers.scheduler import Scheduler
from nanokube.controllers.serviceaccounts import ServiceAccountsController
from nanokube.controllers.serviceindex import ServicePodIndex
from nanokube.controllers.servicelb import ServiceLBController
from nanokube.controllers.settings import ControllerSettings
from nanokube.controllers.statefulset import StatefulSetController
from nanokube.controllers.tainteviction import TaintEvictionController

log = logging.getLogger(__name__)


def build(ctx: Context) -> list[Controller]:
    index = ServicePodIndex(ctx.informer(PODS), ctx.informer(SERVICES))
    node_ipam: list[Controller] = [NodeIpamController(ctx)] if ctx.settings.pod_cidr else []
    return [
        *node_ipam,
        EndpointSliceController(ctx, index),
        EndpointsController(ctx, index),
        MirroringController(ctx),
        ServiceLBController(ctx),
        ReplicaSetController(ctx),
        DeploymentController(ctx),
        StatefulSetController(ctx),
        JobController(ctx),
        CronJobController(ctx),
        DaemonSetController(ctx),
        ReplicationManager(ctx),
        ResourceQuotaController(ctx),
        Scheduler(ctx),
        NodeLifecycleController(ctx),
        DnsEndpointsReadinessController(ctx),
        TaintEvictionController(ctx),
        LocalPathProvisioner(ctx),
        GarbageCollector(ctx),
        NamespaceController(ctx),
        ServiceAccountsController(ctx),
        DisruptionController(ctx),
    ]


async def run_controllers(*, client: ApiClient, settings: ControllerSettings, ready: asyncio.Event) -> None:
    """Run all controllers until cancelled; `ready` is set once every informer has synced."""
    ctx = Context(client, settings)
    controllers = build(ctx)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(ctx.recorder.run(), name="controllers: event poster")
        for (plural, namespace), informer in ctx.informers.items():
            tg.create_task(informer.run(), name=f"controllers: {plural} informer {namespace or ''}".strip())
        await asyncio.gather(*(informer.synced.wait() for informer in ctx.informers.values()))
        for controller in controllers:
            tg.create_task(controller.run(), name=f"controllers: {controller.name}")
        ready.set()
        log.debug("controllers running: %s", ", ".join(c.name for c in controllers))
