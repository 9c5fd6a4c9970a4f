"""Which pods each selector Service selects, kept up to date from the pod and service informers.

A pod event costs O(labels on the pod) look-ups, not O(services): services are indexed by one of their
selector pairs, and only those candidates are matched in full. Listeners get the keys of the services
whose endpoints may have changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from nanokube.api.meta import Obj
from nanokube.client import Informer, object_key
from nanokube.controllers.podports import endpoint_relevant


def service_selector(service: Obj) -> dict[str, str] | None:
    """The selector endpoints are computed from; None for ExternalName and selector-less services."""
    spec = service.get("spec", {})
    if spec.get("type") == "ExternalName":
        return None
    return spec.get("selector") or None


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class ServicePodIndex:
    def __init__(self, pods: Informer, services: Informer) -> None:
        self.pods = pods
        self.services = services
        self._selector: dict[str, dict[str, str]] = {}
        self._by_pair: dict[tuple[str, str, str], set[str]] = {}
        self._service_pods: dict[str, set[str]] = {}
        self._pod_services: dict[str, set[str]] = {}
        self._ns_pods: dict[str, set[str]] = {}
        self._listeners: list[Callable[[Iterable[str]], None]] = []
        pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        services.add_handler(on_add=self._service_changed, on_update=lambda _o, n: self._service_changed(n),
                             on_delete=self._service_deleted)

    def listen(self, listener: Callable[[Iterable[str]], None]) -> None:
        self._listeners.append(listener)

    def pods_of(self, service_key: str) -> list[Obj]:
        out = []
        for key in self._service_pods.get(service_key, ()):
            pod = self.pods.cache.get(key)
            if pod is not None:
                out.append(pod)
        return out

    def services_of(self, pod_key: str) -> set[str]:
        return self._pod_services.get(pod_key, set())

    def _notify(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            for listener in self._listeners:
                listener(keys)

    # -- pods ----------------------------------------------------------------------------------------
    def _matching_services(self, pod: Obj) -> set[str]:
        md = pod.get("metadata", {})
        ns, labels = md.get("namespace", ""), md.get("labels") or {}
        found: set[str] = set()
        for k, v in labels.items():
            for svc in self._by_pair.get((ns, k, v), ()):
                if _matches(self._selector[svc], labels):
                    found.add(svc)
        return found

    def _link(self, pod_key: str, services: set[str]) -> set[str]:
        old = self._pod_services.get(pod_key, set())
        for svc in old - services:
            self._service_pods.get(svc, set()).discard(pod_key)
        for svc in services - old:
            self._service_pods.setdefault(svc, set()).add(pod_key)
        if services:
            self._pod_services[pod_key] = services
        else:
            self._pod_services.pop(pod_key, None)
        return old

    def _pod_added(self, pod: Obj) -> None:
        key = object_key(pod)
        self._ns_pods.setdefault(pod["metadata"].get("namespace", ""), set()).add(key)
        services = self._matching_services(pod)
        old = self._link(key, services)
        self._notify(old | services)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = object_key(new)
        if (old.get("metadata", {}).get("labels") or {}) != (new.get("metadata", {}).get("labels") or {}):
            services = self._matching_services(new)
            previous = self._link(key, services)
            self._notify(previous | services)
        elif endpoint_relevant(old) != endpoint_relevant(new):
            self._notify(self._pod_services.get(key, ()))

    def _pod_deleted(self, pod: Obj) -> None:
        key = object_key(pod)
        self._ns_pods.get(pod["metadata"].get("namespace", ""), set()).discard(key)
        self._notify(self._link(key, set()))

    # -- services ------------------------------------------------------------------------------------
    def _unindex(self, svc_key: str) -> None:
        selector = self._selector.pop(svc_key, None)
        if selector is not None:
            ns = svc_key.split("/", 1)[0]
            k, v = min(selector.items())
            bucket = self._by_pair.get((ns, k, v))
            if bucket is not None:
                bucket.discard(svc_key)
                if not bucket:
                    del self._by_pair[(ns, k, v)]
        for pod_key in self._service_pods.pop(svc_key, set()):
            services = self._pod_services.get(pod_key)
            if services is not None:
                services.discard(svc_key)
                if not services:
                    del self._pod_services[pod_key]

    def _service_changed(self, service: Obj) -> None:
        key = object_key(service)
        selector = service_selector(service)
        if selector != self._selector.get(key):
            self._unindex(key)
            if selector:
                ns = key.split("/", 1)[0]
                self._selector[key] = dict(selector)
                k, v = min(selector.items())
                self._by_pair.setdefault((ns, k, v), set()).add(key)
                members = set()
                for pod_key in self._ns_pods.get(ns, ()):
                    pod = self.pods.cache.get(pod_key)
                    if pod is not None and _matches(selector, pod["metadata"].get("labels") or {}):
                        members.add(pod_key)
                        self._pod_services.setdefault(pod_key, set()).add(key)
                self._service_pods[key] = members
        self._notify([key])

    def _service_deleted(self, service: Obj) -> None:
        key = object_key(service)
        self._unindex(key)
        self._notify([key])
