"""The live map kept per Service: a change rebuilds only the Services it touches, the result equals a map built
from scratch, and every stream of a namespace gets the same delta bytes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from nanokube.ui.feed import MAX_QUEUED, NamespaceFeed, Subscriber
from nanokube.ui.index import ClusterIndex


def _svc(name: str, selector: dict | None = None, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": selector or {}, "clusterIP": spec.pop("clusterIP", "10.96.0.10"),
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}


def _pod(name: str, ip: str, labels: dict, ready: bool = True, restarts: int = 0) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "c", "restartCount": restarts, "ready": ready}]}}


def _slice(service: str, pods: dict[str, str], ready: bool = True, name: str | None = None) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, "nodeName": "node-1",
                           "targetRef": {"kind": "Pod", "name": pod, "namespace": "default"}}
                          for pod, ip in pods.items()]}


def _event(name: str, kind: str, obj: str, reason: str, message: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "involvedObject": {"kind": kind, "name": obj},
            "type": "Warning", "reason": reason, "message": message, "count": 1}


def _node(name: str, ip: str) -> dict:
    return {"metadata": {"name": name}, "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                                                   "conditions": [{"type": "Ready", "status": "True"}]}}


class _World:
    """The informers' side, by hand: objects by (kind, name), each change through the index and the feed."""

    def __init__(self) -> None:
        self.index = ClusterIndex()
        self.objects: dict[tuple[str, str], dict] = {}
        self.feed: NamespaceFeed | None = None

    def put(self, kind: str, obj: dict | None, name: str = "") -> None:
        key = (kind, obj["metadata"]["name"] if obj else name)
        old = self.objects.pop(key, None)
        if obj is not None:
            self.objects[key] = obj
        touched = self.index.update(kind, old, obj)
        if self.feed is not None:
            self.feed.touch(touched)

    def entries(self) -> dict[str, dict]:
        assert self.feed is not None
        return {n: json.loads(b) for n, b in self.feed.entries.items()}

    def from_scratch(self) -> dict[str, dict]:
        fresh = NamespaceFeed("default", self.index, "cluster.local")
        return {n: json.loads(b) for n, b in fresh.entries.items()}


def _on_loop(test: Callable[[], None]) -> None:
    async def body() -> None:
        test()
    asyncio.run(body())


def test_incremental_map_equals_the_map_built_from_scratch() -> None:
    def run() -> None:
        w = _World()
        w.put("namespaces", {"metadata": {"name": "default"}})
        w.put("nodes", _node("node-1", "192.0.2.1"))
        w.put("services", _svc("web", {"app": "web"}, type="NodePort"))
        w.put("services", _svc("nomatch", {"app": "webb"}))
        w.put("services", _svc("manual"))
        w.put("services", _svc("heads", {"app": "web"}, clusterIP="None"))
        w.feed = NamespaceFeed("default", w.index, "cluster.local")
        steps: list[Callable[[], None]] = [
            lambda: w.put("pods", _pod("web-a", "10.0.0.1", {"app": "web"})),
            lambda: w.put("pods", _pod("web-b", "10.0.0.2", {"app": "web"}, ready=False)),
            lambda: w.put("slices", _slice("web", {"web-a": "10.0.0.1", "web-b": "10.0.0.2"})),
            lambda: w.put("slices", _slice("heads", {"web-a": "10.0.0.1"})),
            lambda: w.put("events", _event("e1", "Pod", "web-b", "Unhealthy", "Readiness probe failed: 500")),
            lambda: w.put("pods", _pod("web-a", "10.0.0.1", {"app": "web"}, restarts=3)),
            lambda: w.put("events", _event("e2", "Service", "web", "Note", "hello")),
            lambda: w.put("pods", _pod("other", "10.0.0.3", {"app": "wabe"})),   # the nomatch hint changes
            lambda: w.put("pods", _pod("web-b", "10.0.0.2", {"app": "other"})),  # leaves web by its labels
            lambda: w.put("slices", _slice("manual", {"web-a": "10.0.0.1"}, name="hand-made")),
            lambda: w.put("services", _svc("nomatch", {"app": "web"})),          # now matches
            lambda: w.put("nodes", _node("node-1", "192.0.2.7")),                 # every verdict's node address
            lambda: w.put("pods", None, "web-a"),
            lambda: w.put("slices", None, "web-1"),
            lambda: w.put("services", None, "heads"),
        ]
        codes = []
        for step in steps:
            step()
            w.feed.flush()
            assert w.entries() == w.from_scratch()
            codes.append(w.entries()["nomatch"]["verdict"]["message"] if "nomatch" in w.entries() else "")
        assert "app=wabe, web" in codes[7] and "wabe" not in codes[6]  # the hints follow the pods
        assert w.entries()["web"]["endpoints"] == [] and "heads" not in w.entries()

    _on_loop(run)


def test_a_change_rebuilds_and_sends_only_its_service() -> None:
    def run() -> None:
        w = _World()
        w.put("namespaces", {"metadata": {"name": "default"}})
        for i in range(1000):
            w.put("services", _svc(f"svc-{i:04d}"))
        w.put("services", _svc("web", {"app": "web"}))
        w.put("pods", _pod("web-a", "10.0.0.1", {"app": "web"}))
        w.put("slices", _slice("web", {"web-a": "10.0.0.1"}))
        w.feed = feed = NamespaceFeed("default", w.index, "cluster.local")
        tabs = [Subscriber(feed) for _ in range(10)]
        feed.subscribers.update(tabs)
        built = feed.rebuilt
        w.put("slices", _slice("svc-0500", {"x": "10.1.0.1"}))
        w.put("slices", _slice("svc-0500", {"x": "10.1.0.2"}))  # coalesced with the first
        w.put("pods", _pod("web-a", "10.0.0.1", {"app": "web"}, restarts=1))
        feed.flush()
        assert feed.rebuilt - built == 2  # svc-0500 and web, not 1,001 Services
        chunks = [tab.take() for tab in tabs]
        assert chunks[0].startswith(b"event: delta\ndata: ")
        delta = json.loads(chunks[0].split(b"data: ", 1)[1])
        assert set(delta["services"]) == {"svc-0500", "web"}
        assert [e["address"] for e in delta["services"]["svc-0500"]["endpoints"]] == ["10.1.0.2"]
        assert all(c == chunks[0] for c in chunks)
        w.put("services", _svc("svc-0500"))  # a no-op update: rebuilt, nothing sent
        feed.flush()
        assert not any(tab.take() for tab in tabs)
        w.put("services", None, "svc-0001")
        feed.flush()
        assert json.loads(tabs[0].take().split(b"data: ", 1)[1]) == {"services": {"svc-0001": None}}
        snapshot = json.loads(feed.snapshot().split(b"data: ", 1)[1])
        assert len(snapshot["services"]) == 1000 and snapshot["namespaces"] == ["default"]

        slow = tabs[1]  # a stream that stops reading gets the whole map instead of an endless backlog
        slow.take()
        for i in range(MAX_QUEUED + 1):
            w.put("slices", _slice("svc-0002", {"x": f"10.2.{i // 250}.{i % 250 + 1}"}))
            feed.flush()
            assert tabs[0].take().startswith(b"event: delta")  # a stream that reads gets every delta
        backlog = slow.take()
        assert backlog.startswith(b'data: {"namespace":"default"') and backlog.count(b"\n\n") == 1

    _on_loop(run)
