"""Deleting pods and stopping the server leaves no pod process behind: not the programs, not their children,
not one that ignores SIGTERM, not one that escaped into its own session."""

from __future__ import annotations

import time

from tests.agent_e2e.conftest import kubectl_json, loopback_args, pod_processes
from tests.polling import eventually


def pod_uids(srv) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl_json(srv, "get", "pods")["items"]}


def sleepers(srv, uid: str) -> int:
    return len([p for p in pod_processes(srv.data_dir, uid) if p[1].startswith("sleep 3600")])


def running(srv, count: int) -> bool:
    pods = kubectl_json(srv, "get", "pods")["items"]
    return len(pods) == count and all((p.get("status") or {}).get("phase") == "Running" for p in pods)


def test_no_process_survives_pod_deletion_or_server_stop(make_server):
    srv = make_server(*loopback_args())
    srv.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "echo"}},
        "template": {"metadata": {"labels": {"app": "echo"}}, "spec": {
            "containers": [{"name": "echo", "image": "nanokube/echo"}]}}}})
    stubborn = 'trap "" TERM; sleep 3600 & setsid sleep 3600 & while true; do sleep 0.2; done'
    srv.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stubborn"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "sh", "image": "busybox", "command": ["sh", "-c", stubborn]}]}})
    eventually(lambda: running(srv, 3), 20, what="3 pods Running")
    uids = pod_uids(srv)
    # the stubborn pod's shell, its plain child and its setsid child
    eventually(lambda: sleepers(srv, uids["stubborn"]) == 2, 10, what="stubborn's children")
    echo = next(name for name in uids if name.startswith("echo-"))
    assert pod_processes(srv.data_dir, uids[echo])
    srv.kubectl("delete", "pod", echo)  # waits until the object is gone
    assert pod_processes(srv.data_dir, uids[echo]) == []
    began = time.monotonic()
    srv.kubectl("delete", "pod", "stubborn")
    assert time.monotonic() - began < 5  # SIGKILL after the grace period (agent minimum 2 s)
    assert pod_processes(srv.data_dir, uids["stubborn"]) == []
    srv.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stubborn-2"}, "spec": {
        "terminationGracePeriodSeconds": 2, "containers": [{"name": "sh", "image": "busybox", "command": ["sh", "-c", stubborn]}]}})
    eventually(lambda: running(srv, 3), 20, what="3 pods Running again")
    assert len(pod_processes(srv.data_dir)) >= 5
    began = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - began < 10
    assert pod_processes(srv.data_dir) == []
