"""Legacy Endpoints computation (service-api.md section 4.2)."""

from __future__ import annotations

from tests.controllers.objects import pod, service

from nanokube.controllers.endpoints_desired import compute_subsets, desired_endpoints, endpoints_differ


def test_ready_and_not_ready_sorted_as_strings_and_terminating_dropped():
    svc = service()
    pods = [pod("a", "10.0.0.9"), pod("b", "10.0.0.10"), pod("c", "10.0.0.11", ready=False),
            pod("d", "10.0.0.12", deleting=True)]
    subsets, truncated = compute_subsets(svc, pods)
    assert not truncated and len(subsets) == 1
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.0.0.10", "10.0.0.9"]
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.0.0.11"]
    assert subsets[0]["ports"] == [{"port": 8080, "protocol": "TCP", "name": "http"}]
    assert subsets[0]["addresses"][0]["targetRef"]["name"] == "b"
    assert subsets[0]["addresses"][0]["nodeName"] == "node-1"


def test_publish_not_ready_and_headless_without_ports():
    svc = service(cluster_ip="None", ports=[], publish=True)
    body = desired_endpoints(svc, [pod("a", "10.0.0.9", ready=False), pod("d", "10.0.0.12", deleting=True)])
    assert body["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert body["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"] == "endpoint-controller"
    assert [a["ip"] for a in body["subsets"][0]["addresses"]] == ["10.0.0.12", "10.0.0.9"]
    assert "ports" not in body["subsets"][0]


def test_no_pods_means_no_subsets_and_differ_detects_changes():
    svc = service()
    empty = desired_endpoints(svc, [])
    assert "subsets" not in empty
    full = desired_endpoints(svc, [pod("a", "10.0.0.9")])
    assert endpoints_differ(empty, full) and not endpoints_differ(full, desired_endpoints(svc, [pod("a", "10.0.0.9")]))
