"""The live stream: the whole map once on connect, then per-Service deltas, the same bytes on every stream."""

from __future__ import annotations

import json
from collections.abc import Iterator

from tests.conftest import Server
from tests.ui.conftest import login_url, session


def _events(resp) -> Iterator[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    """(event type, data) of each server-sent event; "message" for a plain `data:`."""
    kind, data = "message", b""
    for line in resp.iter_lines():
        if line.startswith(b"event: "):
            kind = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
        elif not line and data:
            yield kind, data
            kind, data = "message", b""


def _next_delta(events: Iterator[tuple[str, bytes]], name: str) -> tuple[dict, bytes]:
    for kind, data in events:
        assert kind in ("delta", "traffic"), kind  # no second snapshot
        if kind == "delta" and name in (delta := json.loads(data))["services"]:
            return delta, data
    raise AssertionError("stream ended")


def test_snapshot_then_per_service_deltas(cluster: Server) -> None:
    s = session(cluster)
    assert s.get(login_url(cluster)).status_code == 200
    url = cluster.url + "/ui/api/stream?namespace=default"
    with s.get(url, stream=True, timeout=60) as one, s.get(url, stream=True, timeout=60) as two:
        first, second = _events(one), _events(two)
        kind, data = next(first)
        assert kind == "message"
        snapshot = json.loads(data)
        assert snapshot["namespace"] == "default" and "kube-system" in snapshot["namespaces"]
        assert "kubernetes" in {svc["name"] for svc in snapshot["services"]}
        assert next(second)[0] == "message"

        cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "delta-a"},
                       "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        delta, raw = _next_delta(first, "delta-a")
        assert set(delta["services"]) == {"delta-a"}  # the other Services are not sent again
        assert delta["services"]["delta-a"]["verdict"]["code"] == "no-selector-no-endpoints"
        assert _next_delta(second, "delta-a")[1] == raw  # every stream gets the same bytes

        cluster.apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": "delta-a-1", "labels": {"kubernetes.io/service-name": "delta-a"}},
                       "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                       "endpoints": [{"addresses": ["10.9.9.9"], "conditions": {"ready": True}}]})
        delta, _ = _next_delta(first, "delta-a")
        assert set(delta["services"]) == {"delta-a"}
        assert [e["address"] for e in delta["services"]["delta-a"]["endpoints"]] == ["10.9.9.9"]
        assert delta["services"]["delta-a"]["verdict"]["ok"]

        cluster.kubectl("delete", "svc", "delta-a")
        delta, _ = _next_delta(first, "delta-a")
        assert delta["services"] == {"delta-a": None}
