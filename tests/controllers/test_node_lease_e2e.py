"""Node lease expiry through a real `nanokube server --no-agent`, the test playing kubelet (kubelet.py).

A server of its own with a short grace period: the other controller modules keep the default, so that a load
spike stalling the test kubelet's renewals cannot turn their node Unknown mid-test.
"""

from __future__ import annotations

import pytest
from tests.conftest import module_server
from tests.controllers.test_controllers_e2e import deployment, get, pods_of, with_ip
from tests.polling import eventually

pytestmark = pytest.mark.timeout(120)

server = module_server("--network", "loopback", "--components=controllers", "--no-agent",
                       "--node-monitor-grace-period", "3")


def test_node_lease_expiry_marks_node_unknown_and_pods_not_ready(server, kubelet):
    server.apply(deployment("lease", 1))
    # the kubelet has started the pod and reported it ready (not `rollout status`: a stall of the renewals under
    # load before this point would turn it not ready early, and it would never roll out)
    eventually(lambda: with_ip(pods_of(server, "lease")), 60, what="the kubelet to start the pod")
    kubelet.renew = False

    def unknown() -> bool:
        node = get(server, "node", kubelet.node)
        return any(c["type"] == "Ready" and c["status"] == "Unknown" for c in node["status"]["conditions"])
    eventually(unknown, timeout=30)
    eventually(lambda: all(any(c["type"] == "Ready" and c["status"] == "False"
                               for c in p["status"]["conditions"]) for p in pods_of(server, "lease")), 30)
    # the controller taints the node before it turns its pods not ready
    node = get(server, "node", kubelet.node)
    assert {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
