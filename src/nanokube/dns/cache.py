"""The informer-fed cluster view DNS answers from: trimmed records plus indexes by every lookup key.

Handlers are synchronous and run without awaiting, so each update is atomic for the DNS server. Every real
change (an update whose trimmed record is unchanged is ignored) moves the SOA serial and tells the listeners
which services changed, so precomputed answers are dropped or rebuilt in the same moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from nanokube.api.meta import Obj
from nanokube.dns.records import (
    NamespaceRecord,
    PodRecord,
    ServiceKey,
    ServiceRecord,
    SliceRecord,
    trim_endpointslice,
    trim_namespace,
    trim_pod,
    trim_service,
)

# A listener gets the set of service keys whose answers changed, or None when anything may have changed.
ChangeListener = Callable[[set[ServiceKey] | None], None]

KINDS = ("services", "endpointslices", "pods", "namespaces")


class DnsCache:
    def __init__(self, *, kinds: tuple[str, ...] = KINDS) -> None:
        self.services: dict[ServiceKey, ServiceRecord] = {}
        self.slices: dict[tuple[str, str], SliceRecord] = {}
        self.slices_by_service: dict[ServiceKey, dict[str, SliceRecord]] = {}
        self.namespaces: dict[str, NamespaceRecord] = {}
        self.pods: dict[tuple[str, str], PodRecord] = {}
        self.pod_ips: dict[tuple[str, bytes], int] = {}  # (namespace, ip) -> number of pods with it
        self.cluster_ip_index: dict[bytes, list[ServiceKey]] = {}
        self._endpoint_ips: dict[bytes, list[SliceRecord]] | None = None  # built on the first PTR ask
        self.serial = 0
        self._waiting = set(kinds)
        self._listeners: list[ChangeListener] = []

    # -- state -----------------------------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        return not self._waiting

    def mark_synced(self, kind: str | None = None) -> None:
        """Called per kind by the informers (None = all kinds, for tests feeding objects directly)."""
        was = self.synced
        if kind is None:
            self._waiting.clear()
        else:
            self._waiting.discard(kind)
        if self.synced and not was:
            self._changed(None)

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _changed(self, keys: set[ServiceKey] | None) -> None:
        self.serial = max(int(time.time()), self.serial + 1) & 0xFFFFFFFF
        if not self.synced:
            return  # answers are neither cached nor rebuilt before the first full sync
        for listener in self._listeners:
            listener(keys)

    # -- lookups ---------------------------------------------------------------------------------------
    def service(self, namespace: str, name: str) -> ServiceRecord | None:
        return self.services.get((namespace, name))

    def service_slices(self, key: ServiceKey) -> Iterator[SliceRecord]:
        slices = self.slices_by_service.get(key)
        if slices:
            yield from slices.values()

    def has_namespace(self, name: str) -> bool:
        return name in self.namespaces

    def has_pod_ip(self, namespace: str, packed: bytes) -> bool:
        return (namespace, packed) in self.pod_ips

    # -- generic entry points (tests feed whole object dicts) ------------------------------------------
    def add(self, obj: Obj) -> None:
        getattr(self, f"on_{_kind(obj)}_add")(obj)

    def delete(self, obj: Obj) -> None:
        getattr(self, f"on_{_kind(obj)}_delete")(obj)

    # -- services --------------------------------------------------------------------------------------
    def on_service_add(self, obj: Obj) -> None:
        self._put_service(trim_service(obj))

    def on_service_update(self, old: Obj, new: Obj) -> None:
        self._put_service(trim_service(new))

    def on_service_delete(self, obj: Obj) -> None:
        rec = trim_service(obj)
        old = self.services.pop(rec.key, None)
        if old is not None:
            self._unindex_cluster_ips(old)
            self._changed({rec.key})

    def _put_service(self, rec: ServiceRecord) -> None:
        old = self.services.get(rec.key)
        self.services[rec.key] = rec
        if old is not None and old.content() == rec.content():
            return
        if old is not None:
            self._unindex_cluster_ips(old)
        for ip in rec.cluster_ips:
            self.cluster_ip_index.setdefault(ip, []).append(rec.key)
        self._changed({rec.key})

    def _unindex_cluster_ips(self, rec: ServiceRecord) -> None:
        for ip in rec.cluster_ips:
            keys = self.cluster_ip_index.get(ip)
            if keys and rec.key in keys:
                keys.remove(rec.key)
                if not keys:
                    del self.cluster_ip_index[ip]

    # -- endpoint slices -------------------------------------------------------------------------------
    def on_endpointslice_add(self, obj: Obj) -> None:
        self._put_slice(trim_endpointslice(obj))

    def on_endpointslice_update(self, old: Obj, new: Obj) -> None:
        self._put_slice(trim_endpointslice(new))

    def on_endpointslice_delete(self, obj: Obj) -> None:
        rec = trim_endpointslice(obj)
        old = self.slices.pop((rec.namespace, rec.name), None)
        if old is not None:
            self._unindex_slice(old)
            self._changed({(old.namespace, old.service)})

    def _put_slice(self, rec: SliceRecord) -> None:
        key = (rec.namespace, rec.name)
        old = self.slices.get(key)
        self.slices[key] = rec
        if old is not None:
            self._unindex_slice(old)
            if old.content() == rec.content():
                self._index_slice(rec)  # same content, newer resourceVersion: only the record object changes
                return
        self._index_slice(rec)
        changed = {(rec.namespace, rec.service)}
        if old is not None:
            changed.add((old.namespace, old.service))
        self._changed(changed)

    @property
    def endpoint_ip_index(self) -> dict[bytes, list[SliceRecord]]:
        """ip -> slices holding it. Only reverse lookups need it, so it is built when first asked for and
        dropped on any slice change (about 5 MB at 100k endpoints that most clusters never use)."""
        if self._endpoint_ips is None:
            index: dict[bytes, list[SliceRecord]] = {}
            for rec in self.slices.values():
                if rec.service:
                    for ip in rec.ready + rec.not_ready:
                        index.setdefault(ip, []).append(rec)
            self._endpoint_ips = index
        return self._endpoint_ips

    def _index_slice(self, rec: SliceRecord) -> None:
        self._endpoint_ips = None
        if rec.service:
            self.slices_by_service.setdefault((rec.namespace, rec.service), {})[rec.name] = rec

    def _unindex_slice(self, rec: SliceRecord) -> None:
        self._endpoint_ips = None
        svc_key = (rec.namespace, rec.service)
        by_name = self.slices_by_service.get(svc_key)
        if by_name is None or by_name.get(rec.name) is not rec:
            return
        del by_name[rec.name]
        if not by_name:
            del self.slices_by_service[svc_key]

    # -- pods ------------------------------------------------------------------------------------------
    def on_pod_add(self, obj: Obj) -> None:
        self._put_pod(trim_pod(obj))

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        self._put_pod(trim_pod(new))

    def on_pod_delete(self, obj: Obj) -> None:
        rec = trim_pod(obj)
        old = self.pods.pop((rec.namespace, rec.name), None)
        if old is not None:
            self._unindex_pod(old)
            if old.ips:
                self._changed(set())

    def _put_pod(self, rec: PodRecord) -> None:
        key = (rec.namespace, rec.name)
        old = self.pods.get(key)
        self.pods[key] = rec
        if old is not None:
            if old.ips == rec.ips:
                return
            self._unindex_pod(old)
        for ip in rec.ips:
            self.pod_ips[(rec.namespace, ip)] = self.pod_ips.get((rec.namespace, ip), 0) + 1
        if rec.ips or (old is not None and old.ips):
            self._changed(set())  # pod answers are never kept past a change; no service answer depends on pods

    def _unindex_pod(self, rec: PodRecord) -> None:
        for ip in rec.ips:
            n = self.pod_ips.get((rec.namespace, ip), 0) - 1
            if n > 0:
                self.pod_ips[(rec.namespace, ip)] = n
            else:
                self.pod_ips.pop((rec.namespace, ip), None)

    # -- namespaces ------------------------------------------------------------------------------------
    def on_namespace_add(self, obj: Obj) -> None:
        rec = trim_namespace(obj)
        known = rec.name in self.namespaces
        self.namespaces[rec.name] = rec
        if not known:
            self._changed(None)

    def on_namespace_update(self, old: Obj, new: Obj) -> None:
        self.on_namespace_add(new)

    def on_namespace_delete(self, obj: Obj) -> None:
        rec = trim_namespace(obj)
        if self.namespaces.pop(rec.name, None) is not None:
            self._changed(None)


def _kind(obj: Obj) -> str:
    if isinstance(obj, ServiceRecord):
        return "service"
    if isinstance(obj, SliceRecord):
        return "endpointslice"
    if isinstance(obj, PodRecord):
        return "pod"
    if isinstance(obj, NamespaceRecord):
        return "namespace"
    return str(obj.get("kind", "")).lower()
