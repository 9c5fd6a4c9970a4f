"""run_agent: the node agent (our kubelet). Registers the Node, keeps its Lease, runs the pods bound to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from nanokube.agent import cgroups, metrics, netns, streaming
from nanokube.agent.events import PodEvents
from nanokube.agent.ipam import Ipam
from nanokube.agent.kubelet_auth import serving_context
from nanokube.agent.logserver import start_server
from nanokube.agent.node_registration import heartbeat, machine_capacity, pod_cidr_of, register
from nanokube.agent.nodecontext import NodeRuntime
from nanokube.agent.reaper import Guardian, start_guardian
from nanokube.agent.sandbox import clean_leftovers
from nanokube.agent.settings import AgentSettings
from nanokube.agent.volumes import VolumeNotReady
from nanokube.agent.worker import PodWorker
from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.client import ApiClient, Informer
from nanokube.images.catalogue import Catalogue

log = logging.getLogger(__name__)

PODS = by_kind("", "Pod")
SERVICES = by_kind("", "Service")
SECRETS = by_kind("", "Secret")
CONFIGMAPS = by_kind("", "ConfigMap")
PVCS = by_kind("", "PersistentVolumeClaim")
PVS = by_kind("", "PersistentVolume")
SERVICE_ACCOUNTS = by_kind("", "ServiceAccount")


class Agent:
    def __init__(self, client: ApiClient, settings: AgentSettings) -> None:
        self.client = client
        self.settings = settings
        self.workers: dict[str, PodWorker] = {}
        self.rt: NodeRuntime | None = None
        self.created_bridge = False
        self._kubelet_runner = None
        self.usage: metrics.Usage | None = None
        self.events: PodEvents | None = None
        self._cgroup_mounts: list[Any] = []
        self._guardian: Guardian | None = None
        self._tasks: list[asyncio.Task] = []
        self._reapers: set[asyncio.Task] = set()
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={settings.node_name}")
        self.services = Informer(client, SERVICES)
        self.secrets = Informer(client, SECRETS)
        self.configmaps = Informer(client, CONFIGMAPS)

    # -- lookups the workers use -------------------------------------------------------------------------
    async def _secret(self, ns: str, name: str) -> Obj | None:
        return self.secrets.get(ns, name)

    async def _token(self, pod: Obj, audiences: list[str], seconds: int) -> str:
        """A token of the pod's ServiceAccount bound to the pod (TokenRequest), for its projected volume."""
        md = pod["metadata"]
        body: Obj = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                     "spec": {"expirationSeconds": seconds, "audiences": audiences or None,
                              "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": md["name"],
                                                 "uid": md.get("uid", "")}}}
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        try:
            out = await self.client.create(SERVICE_ACCOUNTS, body, md.get("namespace"), subresource="token",
                                           name=account)
        except ApiError as err:
            raise VolumeNotReady(f"failed to fetch token: {err.message}") from err
        return str((out.get("status") or {}).get("token") or "")

    async def _configmap(self, ns: str, name: str) -> Obj | None:
        return self.configmaps.get(ns, name)

    async def _get(self, resource: Any, name: str, ns: str | None = None) -> Obj | None:
        try:
            return await self.client.get(resource, name, ns)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    async def _pvc(self, ns: str, name: str) -> Obj | None:
        return await self._get(PVCS, name, ns)

    async def _pv(self, name: str) -> Obj | None:
        return await self._get(PVS, name)

    async def _report(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.patch(PODS, meta["name"], {"status": status}, meta.get("namespace"),
                                    subresource="status")
        except ApiError as err:
            if err.code != 404:
                raise

    async def _remove(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                     preconditions={"uid": meta["uid"]})
        except ApiError as err:
            if err.code not in (404, 409):
                raise

    # -- informer handlers (no I/O: record and wake) ---------------------------------------------------------
    def _pod_seen(self, pod: Obj) -> None:
        if self.rt is None:
            return
        uid = pod["metadata"].get("uid")
        worker = self.workers.get(uid)
        if worker is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not pod["metadata"].get(
                    "deletionTimestamp"):
                return  # finished before this agent started: nothing to run
            worker = PodWorker(self.rt, pod)
            self.workers[uid] = worker
            worker.start()
            reaper = asyncio.ensure_future(self._reap(worker))
            self._reapers.add(reaper)
            reaper.add_done_callback(self._reapers.discard)
        else:
            worker.update(pod)

    async def _reap(self, worker: PodWorker) -> None:
        await worker.finished.wait()
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]

    def _pod_gone(self, pod: Obj) -> None:
        worker = self.workers.get(pod["metadata"].get("uid"))
        if worker is not None:
            worker.removed()

    def _object_changed(self, kind: str) -> Any:
        def changed(*objs: Obj) -> None:
            obj = objs[-1]
            meta = obj["metadata"]
            for worker in self.workers.values():
                if worker.namespace == meta.get("namespace") and worker.uses(kind, meta["name"]):
                    worker.refresh_volumes()
                elif worker.has_config_error():
                    worker.wake()
        return changed

    def _cgroups(self) -> cgroups.Driver:
        self._cgroup_mounts = cgroups.mount_hierarchies(self.settings.data_dir / "cgroup")
        driver = cgroups.detect(f"nanokube-{self.settings.node_name}-{os.getpid()}")
        if driver.enabled and (stale := cgroups.sweep_stale(driver)):
            log.info("removed the cgroups %d agent(s) that did not stop cleanly left behind", stale)
        return driver

    def _kubelet_routes(self, app: Any, rt: NodeRuntime) -> None:
        streaming.add_routes(app, rt)
        self.usage = metrics.Usage(rt)
        metrics.add_routes(app, self.usage)

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def run(self, ready: asyncio.Event) -> None:
        settings = self.settings
        pods_dir = settings.data_dir / "pods"
        pods_dir.mkdir(parents=True, exist_ok=True)
        # first: wait out the reaper of an agent that was killed, then start ours (pods die with this agent)
        self._guardian = await start_guardian(pods_dir)
        cleaned = await clean_leftovers(pods_dir)
        if cleaned:
            log.info("removed what %d pod sandboxes of an earlier run left behind", cleaned)
        capacity = machine_capacity(settings.data_dir, settings.max_pods)
        catalogue = Catalogue(settings.image_dirs)
        rt = NodeRuntime(settings=settings, pod_cidr=settings.pod_cidr or settings.default_pod_cidr,
                         catalogue=catalogue, services=self.services.list,
                         services_synced=self.services.synced.is_set, get_secret=self._secret,
                         get_configmap=self._configmap, get_pvc=self._pvc, get_pv=self._pv,
                         request_token=self._token,
                         report_status=self._report, remove_pod=self._remove, allocatable=dict(capacity),
                         cgroups=self._cgroups())
        self.events = PodEvents(self.client, settings.node_name)
        rt.record_event = self.events.record
        if rt.cgroups is not None and rt.cgroups.enabled:
            log.info("cgroup v%d for pods under %s", rt.cgroups.version,
                     ", ".join(str(p) for p in rt.cgroups.roots.values()))
        else:
            log.warning("%s", rt.cgroups.reason if rt.cgroups else "cgroups: off")
        tls = serving_context(settings.kubelet_cert, settings.kubelet_key) \
            if settings.kubelet_cert and settings.kubelet_key else None
        self._kubelet_runner, port = await start_server(rt.locate_log, settings.node_ip, settings.kubelet_port,
                                                        extend=lambda app: self._kubelet_routes(app, rt),
                                                        token=settings.kubelet_token, ssl_context=tls)
        node = await register(self.client, settings, port, capacity)
        cidr = await pod_cidr_of(self.client, node, settings)
        rt.pod_cidr = cidr
        rt.ipam = Ipam(cidr)
        if settings.network == "netns":
            self.created_bridge = await netns.ensure_bridge(cidr)
        self.rt = rt
        for kind, informer in (("secret", self.secrets), ("configmap", self.configmaps)):
            handler = self._object_changed(kind)
            informer.add_handler(on_add=handler, on_update=handler)
        self.pods.add_handler(on_add=self._pod_seen, on_update=lambda _old, new: self._pod_seen(new),
                              on_delete=self._pod_gone)
        informers = (self.services, self.secrets, self.configmaps, self.pods)
        self._tasks = [asyncio.ensure_future(i.run()) for i in informers]
        self._tasks.append(asyncio.ensure_future(heartbeat(self.client, settings, node, port, capacity)))
        if self.usage is not None:
            self._tasks.append(asyncio.ensure_future(self.usage.run()))
        if self.events is not None:
            self._tasks.append(asyncio.ensure_future(self.events.run()))
        synced = asyncio.ensure_future(asyncio.gather(*(i.synced.wait() for i in informers)))
        done, _ = await asyncio.wait([synced, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        if synced not in done:
            synced.cancel()
            for task in done:
                task.result()  # an informer or the heartbeat died: fail loudly
            raise RuntimeError("node agent: a background task ended before the caches synced")
        ready.set()
        log.info("node %s ready: pod CIDR %s, kubelet port %d, %s mode", settings.node_name, cidr, port,
                 settings.network)
        await asyncio.gather(*self._tasks)

    async def shutdown(self) -> None:
        """Stop every pod (grace capped), remove every sandbox, the bridge if we made it, and the log server."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        cap = self.settings.shutdown_budget
        workers = list(self.workers.values())
        if workers:
            await asyncio.gather(*(w.shutdown(cap) for w in workers), return_exceptions=True)
        if self.rt is not None:
            await clean_leftovers(self.rt.pods_dir)
        if self.created_bridge:
            await netns.remove_bridge()
        if self.rt is not None and self.rt.cgroups is not None and self.rt.cgroups.enabled:
            node_group = self.rt.cgroups.cgroup()
            node_group.kill()
            node_group.remove(timeout=1.0)
        cgroups.unmount(self._cgroup_mounts)
        if self._kubelet_runner is not None:
            await self._kubelet_runner.cleanup()
        if self._guardian is not None:
            await asyncio.to_thread(self._guardian.release)
            self._guardian = None


async def run_agent(*, client: ApiClient, settings: AgentSettings, ready: asyncio.Event) -> None:
    """Run the node agent until cancelled; on cancellation stop all pods and remove everything it created."""
    agent = Agent(client, settings)
    try:
        await agent.run(ready)
    finally:
        await asyncio.shield(agent.shutdown())
