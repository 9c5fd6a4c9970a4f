"""Restarting the server mid-rollout: the rollout finishes, no duplicate pods, LB addresses kept."""

from __future__ import annotations

import pytest
from tests.conftest import start_server
from tests.controllers.kubelet import FakeKubelet
from tests.controllers.test_controllers_e2e import deployment, get, pods_of, with_ip
from tests.polling import eventually

pytestmark = pytest.mark.timeout(120)
ARGS = ("--network", "loopback", "--components=controllers", "--no-agent", "--lb-pool", "127.240.0.1-127.240.0.2")


def lb(name: str, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "ports": [{"port": port}]}}


def test_restart_mid_rollout_keeps_pods_and_addresses():
    server = start_server(*ARGS)
    try:
        for i, name in enumerate(("lb-a", "lb-b", "lb-c")):
            server.apply(lb(name, 3306 + i))
        ips = {n: eventually(lambda n=n: get(server, "svc", n)["status"]["loadBalancer"].get("ingress"))[0]["ip"]
               for n in ("lb-a", "lb-b")}
        with FakeKubelet(server, auto_ready=False) as kubelet:
            server.apply(deployment("app", 4, strategy={"type": "RollingUpdate",
                                                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
            started = eventually(lambda: (p := with_ip(pods_of(server, "app"))) and len(p) == 4 and p)
            for pod in started:
                kubelet.ready(pod["metadata"]["name"])
            server.kubectl("rollout", "status", "deployment/app", "--timeout=30s")
            server.kubectl("set", "image", "deployment/app", "main=nginx:2")
            fresh = eventually(lambda: with_ip([p for p in pods_of(server, "app")
                                                if p["spec"]["containers"][0]["image"] == "nginx:2"]))
            kubelet.ready(fresh[0]["metadata"]["name"])
            eventually(lambda: len(pods_of(server, "app")) >= 5)
        server.stop()
        server = start_server(*ARGS, data_dir=server.data_dir)
        with FakeKubelet(server, auto_ready=True) as kubelet:
            for p in with_ip(pods_of(server, "app")):  # the rollout goes on: a pod listed may be gone by now
                kubelet.ready(p["metadata"]["name"], missing_ok=True)
            def settle() -> bool:
                live = [p for p in pods_of(server, "app") if not p["metadata"].get("deletionTimestamp")]
                assert len(live) <= 5  # never more than replicas + surge, restart or not
                for p in with_ip(live):
                    if not any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"]):
                        kubelet.ready(p["metadata"]["name"], missing_ok=True)
                d = get(server, "deployment", "app")
                return d["status"].get("updatedReplicas") == 4 and d["status"].get("availableReplicas") == 4 \
                    and d["status"].get("replicas") == 4
            eventually(settle, timeout=40)
            images = [p["spec"]["containers"][0]["image"] for p in pods_of(server, "app")
                      if not p["metadata"].get("deletionTimestamp")]
            assert images == ["nginx:2"] * 4
        for name, ip in ips.items():
            assert get(server, "svc", name)["status"]["loadBalancer"]["ingress"][0]["ip"] == ip
        assert not get(server, "svc", "lb-c")["status"].get("loadBalancer", {}).get("ingress")
    finally:
        server.stop()
