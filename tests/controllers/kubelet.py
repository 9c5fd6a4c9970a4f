"""A stand-in for the node agent in tests: registers a Node (and renews its Lease), gives pods bound to it an
IP and Ready=True, and finishes graceful deletes. Runs on its own event loop thread so blocking kubectl calls
in the test do not stall it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, rfc3339, rfc3339_micro
from nanokube.client import ApiClient, Informer
from nanokube.controllers.resources import LEASES, NAMESPACES, NODES, PODS


class FakeKubelet:
    def __init__(self, server: Any, node: str = "node-1", *, auto_ready: bool = True) -> None:
        self.server = server
        self.node = node
        self.auto_ready = auto_ready
        self.renew = True
        self._ips = itertools.count(2)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._task: asyncio.Future[None] | None = None
        self.client: ApiClient | None = None

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._main(), self._loop)  # type: ignore[assignment]
        self.call(self._wait_started())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self.call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def _wait_started(self) -> None:
        while self.client is None or not self._pods.synced.is_set():
            await asyncio.sleep(0.01)

    async def _main(self) -> None:
        client = ApiClient(self.server.url, self.server.token, ca_file=str(self.server.data_dir / "pki" / "ca.crt"))
        self._pods = Informer(client, PODS)
        self._pods.add_handler(on_add=self._pod, on_update=lambda _o, n: self._pod(n))
        self._queue: asyncio.Queue[Obj] = asyncio.Queue()
        await self._register(client)
        self.client = client
        await asyncio.gather(self._pods.run(), self._worker(), self._renewer())

    async def _register(self, client: ApiClient) -> None:
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node}},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                           "lastHeartbeatTime": rfc3339(), "lastTransitionTime": rfc3339()}],
                           "allocatable": {"pods": "1100"}}}
        try:
            created = await client.create(NODES, node)
            created["status"] = node["status"]
            await client.update(NODES, created, subresource="status")
        except ApiError as err:
            if err.code != 409:
                raise
        for body, resource in (({"metadata": {"name": "kube-node-lease"}}, NAMESPACES),):
            try:
                await client.create(resource, {"apiVersion": "v1", "kind": "Namespace", **body})
            except ApiError as err:
                if err.code != 409:
                    raise

    async def _renewer(self) -> None:
        assert self.client is not None
        while True:
            if self.renew:
                lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": self.node, "namespace": "kube-node-lease"},
                         "spec": {"holderIdentity": self.node, "leaseDurationSeconds": 40,
                                  "renewTime": rfc3339_micro()}}
                try:
                    current = await self.client.get(LEASES, self.node, "kube-node-lease")
                    current["spec"]["renewTime"] = rfc3339_micro()
                    await self.client.update(LEASES, current)
                except ApiError as err:
                    if err.code != 404:
                        raise
                    await self.client.create(LEASES, lease, "kube-node-lease")
            await asyncio.sleep(0.3)

    def _pod(self, pod: Obj) -> None:
        if pod.get("spec", {}).get("nodeName") == self.node:
            self._queue.put_nowait(pod)

    async def _worker(self) -> None:
        assert self.client is not None
        while True:
            pod = await self._queue.get()
            md = pod["metadata"]
            try:
                if md.get("deletionTimestamp"):
                    await self.client.delete(PODS, md["name"], md["namespace"], grace_period_seconds=0)
                elif not pod.get("status", {}).get("podIP"):
                    await self.set_ready(md["namespace"], md["name"], self.auto_ready, first=True)
            except ApiError as err:
                if err.code not in (404, 409):
                    raise

    async def set_ready(self, namespace: str, name: str, ready: bool, *, first: bool = False) -> None:
        """Write the pod's status. ``first``: the pod's first status, written only if nothing has been since (the
        informer's copy may be stale, and the test may have readied the pod meanwhile: that must stand)."""
        assert self.client is not None
        pod = await self.client.get(PODS, name, namespace)
        if first and pod.get("status", {}).get("podIP"):
            return
        ip = pod.get("status", {}).get("podIP") or f"127.244.{next(self._ips) // 250}.{next(self._ips) % 250 + 2}"
        status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
                  "conditions": [{"type": "PodScheduled", "status": "True"},
                                 {"type": "Ready", "status": "True" if ready else "False",
                                  "lastTransitionTime": rfc3339()},
                                 {"type": "ContainersReady", "status": "True" if ready else "False"}],
                  "containerStatuses": [{"name": c["name"], "ready": ready, "restartCount": 0,
                                         "image": c.get("image", ""), "imageID": "", "started": True,
                                         "state": {"running": {"startedAt": rfc3339()}}}
                                        for c in pod["spec"].get("containers") or []]}
        if first:  # an update, not a patch: its resourceVersion makes a write that came in between win (409 here)
            await self.client.update(PODS, dict(pod, status=status), subresource="status")
        else:
            await self.client.patch(PODS, name, {"status": status}, namespace, subresource="status")

    def ready(self, name: str, ready: bool = True, namespace: str = "default", *, missing_ok: bool = False) -> None:
        """``missing_ok``: the pod may be deleted meanwhile (a controller still at work), which is no failure."""
        try:
            self.call(self.set_ready(namespace, name, ready))
        except ApiError as err:
            if not (missing_ok and err.code == 404):
                raise
