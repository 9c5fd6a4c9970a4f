"""0 failed requests while a Deployment rolls (issue 14), netns mode: the same scenario as
tests/loopback/test_rollout_zero_failures.py, the load running inside the cluster's namespace and reaching the
ClusterIP through nftables."""

from __future__ import annotations

import time

from tests.netns.cluster import NetnsCluster
from tests.rollout_load import NAME, manifests, run_changes, start_load, stop_load


def test_rollouts_under_load_fail_no_request(cluster: NetnsCluster) -> None:
    cluster.apply(manifests())
    cluster.kubectl("rollout", "status", f"deployment/{NAME}", "--timeout=120s", timeout=130)
    cluster_ip = cluster.get("svc", NAME)["spec"]["clusterIP"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        slices = cluster.get("endpointslices", "-l", f"kubernetes.io/service-name={NAME}")["items"]
        if slices and len(slices[0].get("endpoints") or []) == 2:
            break
        time.sleep(0.1)
    load = start_load(["ip", "netns", "exec", cluster.name], cluster_ip)
    try:
        time.sleep(1)
        took = run_changes(lambda *a, **kw: cluster.kubectl(*a, **kw))
    finally:
        counts = stop_load(load)
    assert counts["new"]["failed"] == 0 and counts["keepalive"]["failed"] == 0, (counts, took)
    assert counts["new"]["ok"] > 100 and counts["keepalive"]["ok"] > 100, counts
    assert counts["keepalive"]["reconnects"] >= 3
    cluster.kubectl("delete", "deployment", NAME)
