"""pods/eviction and PodDisruptionBudgets through `kubectl drain` (the test plays kubelet, kubelet.py)."""

from __future__ import annotations

import json

import pytest
import yaml
from tests.conftest import module_server
from tests.polling import eventually

pytestmark = pytest.mark.timeout(180)
server = module_server("--network", "loopback", "--components=controllers", "--no-agent")


def test_drain_evicts_within_the_disruption_budget(server, kubelet):
    server.apply(yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "drained"},
                                 "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "drained"}},
                                          "template": {"metadata": {"labels": {"app": "drained"}},
                                                       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}))
    server.kubectl("rollout", "status", "deployment/drained", "--timeout=60s")
    server.apply(yaml.safe_dump({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                 "metadata": {"name": "keep-one"},
                                 "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "drained"}}}}))

    def allowed() -> int:
        pdb = json.loads(server.kubectl("get", "pdb", "keep-one", "-o", "json").stdout)
        return (pdb.get("status") or {}).get("disruptionsAllowed") == 1
    eventually(allowed, 30, what="the budget allowing one disruption")

    # one pod may go; its replacement cannot be scheduled on the cordoned node, so the second must stay
    out = server.kubectl("drain", kubelet.node, "--ignore-daemonsets", "--timeout=8s", check=False)
    assert out.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget" in out.stderr, out.stderr
    assert "evicted" in out.stdout
    server.kubectl("delete", "pdb", "keep-one")
    out = server.kubectl("drain", kubelet.node, "--ignore-daemonsets", "--timeout=60s")
    assert f"node/{kubelet.node} drained" in out.stdout
    server.kubectl("uncordon", kubelet.node)
