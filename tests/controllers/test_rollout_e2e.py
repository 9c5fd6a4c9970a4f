"""Rollout strategies through the real kubectl: restart, Recreate, pause/resume (own server: the lease test
of test_controllers_e2e.py turns its node NotReady)."""

from __future__ import annotations

import time

import pytest
from tests.conftest import Server, module_server
from tests.controllers.test_controllers_e2e import deployment, get, pods_of
from tests.polling import eventually

pytestmark = pytest.mark.timeout(120)


server = module_server("--network", "loopback", "--components=controllers", "--no-agent")


def live_pods(server: Server, app: str) -> list[dict]:
    return [p for p in pods_of(server, app) if not p["metadata"].get("deletionTimestamp")]


def test_rollout_restart_recreate_and_pause(server, kubelet):
    server.apply(deployment("rec", 2, strategy={"type": "Recreate"}))
    server.kubectl("rollout", "status", "deployment/rec", "--timeout=30s")
    first = {p["metadata"]["name"] for p in live_pods(server, "rec")}
    assert len(first) == 2

    # Recreate: the old pods are all gone before any new one exists, so old and new never run together.
    seen_mixed = False
    server.kubectl("rollout", "restart", "deployment/rec")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = {p["metadata"]["name"] for p in pods_of(server, "rec")}
        if names & first and names - first:
            seen_mixed = True
        if names and not names & first and len(live_pods(server, "rec")) == 2:
            break
        time.sleep(0.02)
    server.kubectl("rollout", "status", "deployment/rec", "--timeout=30s")
    d = get(server, "deployment", "rec")
    assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"]["annotations"]
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert not {p["metadata"]["name"] for p in live_pods(server, "rec")} & first
    assert not seen_mixed, "Recreate ran old and new pods at the same time"

    # Paused: a template change makes no new ReplicaSet until the rollout is resumed.
    server.kubectl("rollout", "pause", "deployment/rec")
    server.kubectl("set", "image", "deployment/rec", "main=nginx:3")

    def observed() -> bool:  # the controller has synced the changed template (and, paused, done nothing)
        d = get(server, "deployment", "rec")
        return d["status"].get("observedGeneration", 0) >= d["metadata"]["generation"]

    eventually(observed)
    assert len(get(server, "rs", "-l", "app=rec")["items"]) == 2
    assert {p["spec"]["containers"][0]["image"] for p in live_pods(server, "rec")} == {"nginx:1"}
    server.kubectl("rollout", "resume", "deployment/rec")
    server.kubectl("rollout", "status", "deployment/rec", "--timeout=30s")
    assert {p["spec"]["containers"][0]["image"] for p in live_pods(server, "rec")} == {"nginx:3"}
