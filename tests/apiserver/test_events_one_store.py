"""core/v1 and events.k8s.io/v1 Events are one store, each read in its own shape (official Python client)."""

from __future__ import annotations

import datetime

from kubernetes import watch


def test_events_written_through_either_group_are_read_through_both(api_server):
    client, api_client = api_server.client()
    core = client.CoreV1Api(api_client)
    events = client.EventsV1Api(api_client)
    now = datetime.datetime.now(datetime.UTC)
    core.create_namespaced_event("default", client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="from-core"), reason="Poked", message="core says hi", type="Normal",
        involved_object=client.V1ObjectReference(kind="Pod", name="p1", namespace="default"),
        source=client.V1EventSource(component="tester"), first_timestamp=now, last_timestamp=now, count=2))
    events.create_namespaced_event("default", client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="from-v1"), event_time=now, reason="Prodded", note="v1 says hi",
        type="Warning", action="Prod", reporting_controller="tester/ctl", reporting_instance="tester-1",
        regarding=client.V1ObjectReference(kind="Pod", name="p2", namespace="default")))

    as_v1 = {e.metadata.name: e for e in events.list_namespaced_event("default").items}
    as_core = {e.metadata.name: e for e in core.list_namespaced_event("default").items}
    assert {"from-core", "from-v1"} <= set(as_v1) and {"from-core", "from-v1"} <= set(as_core)
    assert as_v1["from-core"].note == "core says hi" and as_v1["from-core"].regarding.name == "p1"
    assert as_v1["from-core"].deprecated_count == 2 and as_v1["from-core"].deprecated_source.component == "tester"
    assert as_core["from-v1"].message == "v1 says hi" and as_core["from-v1"].involved_object.name == "p2"
    assert as_core["from-v1"].reporting_component == "tester/ctl" and as_core["from-v1"].action == "Prod"

    picked = events.list_namespaced_event("default", field_selector="regarding.name=p2").items
    assert [e.metadata.name for e in picked] == ["from-v1"]
    one = events.read_namespaced_event("from-core", "default")
    assert one.note == "core says hi"
    events.patch_namespaced_event("from-core", "default", {"note": "patched through v1"})
    assert core.read_namespaced_event("from-core", "default").message == "patched through v1"

    w = watch.Watch()
    rv = events.list_namespaced_event("default").metadata.resource_version
    core.patch_namespaced_event("from-v1", "default", {"message": "changed in core"})
    for ev in w.stream(events.list_namespaced_event, "default", resource_version=rv, timeout_seconds=10):
        assert ev["object"].metadata.name == "from-v1" and ev["object"].note == "changed in core"
        w.stop()
    events.delete_namespaced_event("from-v1", "default")
    assert "from-v1" not in {e.metadata.name for e in core.list_namespaced_event("default").items}
