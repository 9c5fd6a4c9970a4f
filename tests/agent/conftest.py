"""Helpers for the node agent tests: a NodeRuntime without an API server, pods as plain dicts."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.polling import eventually_async

from nanokube.agent.nodecontext import NodeRuntime
from nanokube.agent.settings import AgentSettings
from nanokube.agent.worker import PodWorker
from nanokube.api.meta import Obj
from nanokube.images.catalogue import Catalogue


def make_pod(name: str, containers: list[Obj], namespace: str = "default", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
            "spec": {"containers": containers, **spec}}


class Node:
    """A NodeRuntime in loopback mode on a random 127.244.x.0/24, recording every status it reports."""

    def __init__(self, data_dir: Path, **kw: Any) -> None:
        cidr = f"127.244.{random.randint(100, 250)}.0/24"
        self.settings = AgentSettings(node_name="test-node", node_ip="127.0.0.1", network="loopback",
                                      data_dir=data_dir, pod_cidr=cidr, cluster_dns="127.96.0.10",
                                      backoff_base=kw.pop("backoff_base", 0.2))
        self.statuses: dict[str, list[Obj]] = {}
        self.removed: list[str] = []
        self.changed = asyncio.Event()
        self.secrets: dict[tuple[str, str], Obj] = {}
        self.configmaps: dict[tuple[str, str], Obj] = {}
        self.services: list[Obj] = []

        async def report(pod: Obj, status: Obj) -> None:
            self.statuses.setdefault(pod["metadata"]["name"], []).append(status)
            self.changed.set()

        async def remove(pod: Obj) -> None:
            self.removed.append(pod["metadata"]["name"])
            self.changed.set()

        async def secret(ns: str, name: str) -> Obj | None:
            return self.secrets.get((ns, name))

        async def configmap(ns: str, name: str) -> Obj | None:
            return self.configmaps.get((ns, name))

        self.rt = NodeRuntime(settings=self.settings, pod_cidr=cidr, catalogue=Catalogue(kw.pop("image_dirs", [])),
                              services=lambda: self.services, get_secret=secret, get_configmap=configmap,
                              report_status=report, remove_pod=remove)
        self.workers: list[PodWorker] = []

    def run(self, pod: Obj) -> PodWorker:
        worker = PodWorker(self.rt, pod)
        worker.start()
        self.workers.append(worker)
        return worker

    def last(self, name: str) -> Obj | None:
        found = self.statuses.get(name)
        return found[-1] if found else None

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                result = predicate()
                if result:
                    return result
                self.changed.clear()
                await self.changed.wait()

    async def poll(self, predicate: Any, timeout: float = 10.0) -> Any:
        """For conditions outside the agent (a file a process writes), which no event announces."""
        return await eventually_async(predicate, timeout)

    async def delete(self, worker: PodWorker, grace: int | None = None) -> None:
        meta = dict(worker.pod["metadata"], deletionTimestamp="2025-01-01T00:00:00Z")
        if grace is not None:
            meta["deletionGracePeriodSeconds"] = grace
        worker.update(dict(worker.pod, metadata=meta))
        await asyncio.wait_for(worker.finished.wait(), 15)

    async def close(self) -> None:
        for worker in self.workers:
            if not worker.finished.is_set():
                await worker.shutdown(2.0)


@pytest.fixture
async def node(tmp_path: Path):
    n = Node(tmp_path)
    yield n
    await n.close()


def container_status(status: Obj | None, name: str) -> Obj | None:
    for cs in (status or {}).get("containerStatuses") or []:
        if cs["name"] == name:
            return cs
    return None
