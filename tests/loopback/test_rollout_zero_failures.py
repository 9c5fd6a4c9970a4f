"""0 failed requests while a Deployment rolls (issue 14), loopback mode: `rollout restart`, `set image` and
`set env` under constant load on the ClusterIP, with new connections and keep-alive (the echo image drains
on SIGTERM; the userspace proxy stops choosing a terminating pod)."""

from __future__ import annotations

import time

from tests.conftest import Server
from tests.loopback.conftest import kubectl_json, manifest
from tests.polling import eventually
from tests.rollout_load import NAME, manifests, run_changes, start_load, stop_load


def test_rollouts_under_load_fail_no_request(cluster: Server) -> None:
    cluster.apply(manifest(*manifests()))
    cluster.kubectl("rollout", "status", f"deployment/{NAME}", "--timeout=120s", timeout=130)
    cluster_ip = kubectl_json(cluster, "svc", NAME)["spec"]["clusterIP"]
    eventually(lambda: len(kubectl_json(cluster, "endpointslices", "-l", f"kubernetes.io/service-name={NAME}")
                           ["items"][0].get("endpoints") or []) == 2, timeout=30)
    load = start_load([], cluster_ip)
    try:
        time.sleep(1)
        took = run_changes(lambda *a, **kw: cluster.kubectl(*a, **kw))
    finally:
        counts = stop_load(load)
    assert counts["new"]["failed"] == 0 and counts["keepalive"]["failed"] == 0, (counts, took)
    assert counts["new"]["ok"] > 100 and counts["keepalive"]["ok"] > 100, counts
    assert counts["keepalive"]["reconnects"] >= 3  # drained pods told keep-alive clients to move on
    cluster.kubectl("delete", "deployment", NAME, "--wait=false")
