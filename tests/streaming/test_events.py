"""Pod events as the kubelet posts them, seen with kubectl describe / the Events API: Scheduled, Pulled, Created,
Started, Killing, BackOff, Unhealthy, Failed (ErrImagePull then ImagePullBackOff), FailedMount."""

from __future__ import annotations

import json

from tests.conftest import Server
from tests.polling import eventually


def _events(cluster: Server, pod: str) -> list[dict]:
    out = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={pod}", "-o", "json").stdout
    return json.loads(out)["items"]


def _reasons(cluster: Server, pod: str) -> set[str]:
    return {e["reason"] for e in _events(cluster, pod)}


def test_lifecycle_events(cluster: Server) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "evpod"},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                       {"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}})
    wanted = {"Scheduled", "Pulled", "Created", "Started"}
    eventually(lambda: wanted <= _reasons(cluster, "evpod"), 30, what=f"events {wanted}")
    events = {e["reason"]: e for e in _events(cluster, "evpod")}
    assert events["Scheduled"]["source"]["component"] == "default-scheduler"
    assert events["Started"]["source"]["component"] == "kubelet"
    assert events["Started"]["involvedObject"]["fieldPath"] == "spec.containers{main}"
    assert events["Pulled"]["message"] == 'Container image "busybox" already present on machine'
    described = cluster.kubectl("describe", "pod", "evpod").stdout
    assert "Started container main" in described
    cluster.kubectl("delete", "pod", "evpod", "--wait=false")
    eventually(lambda: "Killing" in _reasons(cluster, "evpod"), 30, what="a Killing event")


def test_unknown_image_err_image_pull_then_back_off(cluster: Server) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "noimage"},
                   "spec": {"containers": [{"name": "c", "image": "registry.example/nothing:1"}]}})

    def reason() -> str:
        pod = json.loads(cluster.kubectl("get", "pod", "noimage", "-o", "json").stdout)
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return (statuses[0].get("state", {}).get("waiting") or {}).get("reason", "")

    eventually(lambda: reason() == "ImagePullBackOff", 30, what="ImagePullBackOff")
    messages = [e["message"] for e in _events(cluster, "noimage") if e["reason"] == "Failed"]
    pull = next(m for m in messages if m.startswith('Failed to pull image "registry.example/nothing:1"'))
    assert "nanokube image catalogue" in pull and "site-packages" not in pull
    assert "Error: ErrImagePull" in messages
    assert "BackOff" in _reasons(cluster, "noimage")
    cluster.kubectl("delete", "pod", "noimage", "--wait=false")


def test_back_off_unhealthy_and_failed_mount(cluster: Server) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flaky"},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                       {"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 1; exit 1"]},
                       {"name": "probed", "image": "busybox", "command": ["sleep", "3600"],
                        "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1,
                                          "failureThreshold": 1}}]}})
    eventually(lambda: {"BackOff", "Unhealthy"} <= _reasons(cluster, "flaky"), 60, what="BackOff and Unhealthy events")
    unhealthy = next(e for e in _events(cluster, "flaky") if e["reason"] == "Unhealthy")
    assert unhealthy["message"].startswith("Liveness probe failed")
    assert unhealthy["involvedObject"]["fieldPath"] == "spec.containers{probed}"
    cluster.kubectl("delete", "pod", "flaky", "--wait=false")
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nomount"},
                   "spec": {"volumes": [{"name": "cfg", "configMap": {"name": "does-not-exist"}}],
                            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                                            "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}]}})
    eventually(lambda: "FailedMount" in _reasons(cluster, "nomount"), 30, what="a FailedMount event")
    cluster.kubectl("delete", "pod", "nomount", "--wait=false")
