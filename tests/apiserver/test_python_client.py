"""The official `kubernetes` Python client, unchanged, against the server."""

from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException


def _svc(client, name, labels, port=80):
    return client.V1Service(metadata=client.V1ObjectMeta(name=name, labels=labels),
                            spec=client.V1ServiceSpec(selector={"app": name},
                                                      ports=[client.V1ServicePort(port=port)]))


def test_create_list_watch_patch_replace_delete(api_server):
    client, api_client = api_server.client()
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_service("default", _svc(client, "py-a", {"team": "blue"}))
    assert created.spec.cluster_ip.startswith("127.96.")
    core.create_namespaced_service("default", _svc(client, "py-b", {"team": "red"}))
    names = {s.metadata.name for s in core.list_namespaced_service("default", label_selector="team in (blue)").items}
    assert names == {"py-a"}
    names = {s.metadata.name for s in core.list_namespaced_service("default", label_selector="team").items}
    assert names == {"py-a", "py-b"}
    by_field = core.list_namespaced_service("default", field_selector="metadata.name=py-b").items
    assert [s.metadata.name for s in by_field] == ["py-b"]

    from kubernetes import watch

    start_rv = created.metadata.resource_version
    core.patch_namespaced_service("py-a", "default", {"metadata": {"labels": {"patched": "yes"}}})
    events = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_service, "default", resource_version=start_rv, timeout_seconds=5):
        events.append((ev["type"], ev["object"].metadata.name))
        if ("MODIFIED", "py-a") in events and ("ADDED", "py-b") in events:
            w.stop()
    assert ("ADDED", "py-b") in events and ("MODIFIED", "py-a") in events

    stale = core.read_namespaced_service("py-a", "default")
    core.patch_namespaced_service("py-a", "default", {"metadata": {"labels": {"again": "1"}}})
    stale.metadata.labels["late"] = "yes"
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_service("py-a", "default", stale)
    assert info.value.status == 409 and "the object has been modified" in info.value.body

    core.delete_namespaced_service("py-a", "default")
    core.delete_namespaced_service("py-b", "default")
    with pytest.raises(ApiException) as info:
        core.read_namespaced_service("py-a", "default")
    assert info.value.status == 404
