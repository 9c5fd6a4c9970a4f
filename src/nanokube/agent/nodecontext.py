"""What every pod worker on a node shares: settings, the image catalogue, pod IPs, object lookups, logs and
the way status reaches the API. Tests build one without an API server (report/remove left as no-ops)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanokube.agent.cgroups import Driver
from nanokube.agent.ipam import Ipam
from nanokube.agent.logs import ContainerLog
from nanokube.agent.sandbox import Sandbox
from nanokube.agent.settings import AgentSettings
from nanokube.api.meta import Obj
from nanokube.images.catalogue import Catalogue

Getter = Callable[[str, str], Awaitable[Obj | None]]


async def _none(_ns: str, _name: str) -> Obj | None:
    return None


async def _no_pv(_name: str) -> Obj | None:
    return None


async def _ignore_status(_pod: Obj, _status: Obj) -> None:
    return None


async def _ignore_remove(_pod: Obj) -> None:
    return None


def _ignore_event(_pod: Obj, _type: str, _reason: str, _message: str, _container: str | None = None) -> None:
    return None


@dataclass
class NodeRuntime:
    settings: AgentSettings
    pod_cidr: str
    catalogue: Catalogue
    services: Callable[[], Iterable[Obj]] = list
    services_synced: Callable[[], bool] = lambda: True
    get_secret: Getter = _none
    get_configmap: Getter = _none
    get_pvc: Getter = _none
    get_pv: Callable[[str], Awaitable[Obj | None]] = _no_pv
    request_token: Callable[[Obj, list[str], int], Awaitable[str]] | None = None  # see volumes.VolumeSources
    report_status: Callable[[Obj, Obj], Awaitable[None]] = _ignore_status
    remove_pod: Callable[[Obj], Awaitable[None]] = _ignore_remove
    allocatable: dict[str, str] = field(default_factory=dict)
    ipam: Ipam | None = None
    logs: dict[tuple[str, str, str], ContainerLog] = field(default_factory=dict)
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    workers: dict[tuple[str, str], Any] = field(default_factory=dict)  # (namespace, name) -> its PodWorker
    cgroups: Driver | None = None  # None or disabled: pods run without resource limits
    # (pod, type, reason, message, container): an Event as the kubelet posts it (agent/events.py)
    record_event: Callable[..., None] = _ignore_event

    def __post_init__(self) -> None:
        if self.ipam is None:
            self.ipam = Ipam(self.pod_cidr)

    @property
    def pods_dir(self) -> Path:
        return self.settings.data_dir / "pods"

    @property
    def netns_mode(self) -> bool:
        return self.settings.network == "netns"

    def locate_log(self, namespace: str, pod: str, container: str) -> ContainerLog | str:
        found = self.logs.get((namespace, pod, container))
        if found is not None:
            return found
        if any(k[0] == namespace and k[1] == pod for k in self.logs):
            return f'container "{container}" in pod "{pod}" is not available'
        return f'pod "{pod}" in namespace "{namespace}" is not running on this node'
