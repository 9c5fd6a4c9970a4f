"""Good paths: defaulting output per type, nodePort sharing, type transitions, re-apply, dry-run, delete."""

from __future__ import annotations

import copy
import ipaddress
import random
from typing import Any

from tests.api.service_writes import prepare_create, prepare_update

from nanokube.api.service import default_service
from nanokube.apiserver.allocators import ServiceAllocator

SERVICE_NET = ipaddress.ip_network("10.96.0.0/12")
DYNAMIC_IPS_FROM = ipaddress.ip_address("10.96.1.1")


def manifest(name: str = "web", **spec: Any) -> dict[str, Any]:
    spec.setdefault("selector", {"app": "web"})
    spec.setdefault("ports", [{"port": 80, "targetPort": 8080}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def allocator() -> ServiceAllocator:
    return ServiceAllocator("10.96.0.0/12", "30000-32767", rng=random.Random(1))


def create(alloc: ServiceAllocator, obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    prepare_create(alloc, obj).commit()
    obj["metadata"].update(resourceVersion="1", uid="u-1", creationTimestamp="2024-01-01T00:00:00Z")
    return obj


def assert_dynamic_ip(ip: str) -> None:
    addr = ipaddress.ip_address(ip)
    assert addr in SERVICE_NET and addr >= DYNAMIC_IPS_FROM and addr != SERVICE_NET.broadcast_address


def test_cluster_ip_net_result() -> None:
    alloc = allocator()
    obj = create(alloc, manifest())
    spec = obj["spec"]
    ip = spec["clusterIP"]
    assert_dynamic_ip(ip)
    assert spec == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
    }
    assert obj["status"] == {"loadBalancer": {}}
    assert alloc.ips.used() == [ip]


def test_node_port_net_result() -> None:
    alloc = allocator()
    spec = create(alloc, manifest(type="NodePort", ports=[{"port": 80}]))["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    port = spec["ports"][0]
    assert port["targetPort"] == 80 and port["protocol"] == "TCP"
    assert 30086 <= port["nodePort"] <= 32767
    assert "allocateLoadBalancerNodePorts" not in spec and "healthCheckNodePort" not in spec
    assert alloc.ports.used() == [port["nodePort"]]


def test_load_balancer_net_result() -> None:
    alloc = allocator()
    spec = create(alloc, manifest(type="LoadBalancer"))["spec"]
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert spec["externalTrafficPolicy"] == "Cluster" and spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ports"][0]["nodePort"] >= 30086
    assert "healthCheckNodePort" not in spec


def test_load_balancer_local_gets_health_check_port() -> None:
    alloc = allocator()
    spec = create(alloc, manifest(type="LoadBalancer", externalTrafficPolicy="Local"))["spec"]
    hc = spec["healthCheckNodePort"]
    assert 30000 <= hc <= 32767 and hc != spec["ports"][0]["nodePort"]
    assert sorted(alloc.ports.used()) == sorted([hc, spec["ports"][0]["nodePort"]])


def test_load_balancer_without_node_ports_keeps_only_requested_ones() -> None:
    alloc = allocator()
    spec = create(alloc, manifest(type="LoadBalancer", allocateLoadBalancerNodePorts=False,
                                  ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30001}]))["spec"]
    assert "nodePort" not in spec["ports"][0]
    assert spec["ports"][1]["nodePort"] == 30001
    assert alloc.ports.used() == [30001]


def test_headless_with_selector() -> None:
    alloc = allocator()
    spec = create(alloc, manifest(clusterIP="None"))["spec"]
    assert spec["clusterIP"] == "None" and spec["clusterIPs"] == ["None"]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert alloc.ips.used() == []


def test_headless_selectorless_is_require_dual_stack() -> None:
    alloc = allocator()
    obj = manifest(clusterIP="None")
    del obj["spec"]["selector"]
    spec = create(alloc, obj)["spec"]
    assert spec["ipFamilyPolicy"] == "RequireDualStack" and spec["ipFamilies"] == ["IPv4", "IPv6"]


def test_headless_without_ports_is_fine() -> None:
    spec = create(allocator(), manifest(clusterIP="None", ports=[]))["spec"]
    assert spec["clusterIPs"] == ["None"]


def test_external_name_net_result() -> None:
    alloc = allocator()
    obj = manifest(type="ExternalName", externalName="db.example.com.")
    del obj["spec"]["selector"]
    spec = create(alloc, obj)["spec"]
    for absent in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy",
                   "externalTrafficPolicy"):
        assert absent not in spec
    assert spec["externalName"] == "db.example.com." and spec["sessionAffinity"] == "None"
    assert alloc.ips.used() == []


def test_cluster_ip_with_external_ips_defaults_etp() -> None:
    spec = create(allocator(), manifest(externalIPs=["192.0.2.10"]))["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"


def test_client_ip_affinity_default_timeout() -> None:
    spec = default_service(manifest(sessionAffinity="ClientIP"))["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    spec = default_service(manifest(sessionAffinity="None", sessionAffinityConfig={"clientIP": {}}))["spec"]
    assert "sessionAffinityConfig" not in spec


def test_default_service_is_idempotent_and_fills_target_port() -> None:
    obj = manifest(ports=[{"port": 53, "targetPort": 0}, {"name": "x", "port": 54, "targetPort": ""}])
    once = copy.deepcopy(default_service(obj))
    assert default_service(obj) == once
    assert [p["targetPort"] for p in once["spec"]["ports"]] == [53, 54]


def test_well_known_addresses_can_be_requested() -> None:
    alloc = allocator()
    kubernetes = create(alloc, {"metadata": {"name": "kubernetes", "namespace": "default"},
                                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443,
                                                                              "targetPort": 6443}]}})
    dns = create(alloc, manifest(name="kube-dns", clusterIP="10.96.0.10"))
    assert kubernetes["spec"]["clusterIPs"] == ["10.96.0.1"] and dns["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert alloc.ips.used() == ["10.96.0.1", "10.96.0.10"]


def test_tcp_and_udp_share_one_node_port() -> None:
    alloc = allocator()
    spec = create(alloc, manifest(type="NodePort", ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                                                          {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]))["spec"]
    first, second = (p["nodePort"] for p in spec["ports"])
    assert first == second and alloc.ports.used() == [first]


def test_tcp_and_udp_share_a_requested_node_port() -> None:
    alloc = allocator()
    spec = create(alloc, manifest(type="NodePort", ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                                                          {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                                                           "nodePort": 30053}]))["spec"]
    assert [p["nodePort"] for p in spec["ports"]] == [30053, 30053]
    assert alloc.ports.used() == [30053]


def test_static_band_values_can_be_requested() -> None:
    alloc = allocator()
    spec = create(alloc, manifest(type="NodePort", clusterIP="10.96.0.200", ports=[{"port": 80, "nodePort": 30000}]))
    assert spec["spec"]["clusterIP"] == "10.96.0.200" and spec["spec"]["ports"][0]["nodePort"] == 30000


def test_revert_gives_everything_back() -> None:
    alloc = allocator()
    allocation = prepare_create(alloc, manifest(type="LoadBalancer", externalTrafficPolicy="Local"))
    assert len(allocation.ips_added) == 1 and len(allocation.ports_added) == 2
    allocation.revert()
    allocation.revert()
    assert alloc.ips.used() == [] and alloc.ports.used() == []


def test_dry_run_reserves_nothing() -> None:
    alloc = allocator()
    obj = manifest(type="NodePort", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}])
    allocation = prepare_create(alloc, obj, dry_run=True)
    assert obj["spec"]["clusterIP"] == "10.96.0.0"
    assert [p["nodePort"] for p in obj["spec"]["ports"]] == [32769, 32770]
    assert allocation.ips_added == [] and allocation.ports_added == []
    assert alloc.ips.used() == [] and alloc.ports.used() == []


def test_delete_releases_everything() -> None:
    alloc = allocator()
    obj = create(alloc, manifest(type="LoadBalancer", externalTrafficPolicy="Local"))
    released = alloc.begin_delete(obj)
    released.commit()
    assert released.ips_released == [obj["spec"]["clusterIP"]]
    assert sorted(released.ports_released) == sorted([obj["spec"]["ports"][0]["nodePort"],
                                                      obj["spec"]["healthCheckNodePort"]])
    assert alloc.ips.used() == [] and alloc.ports.used() == []
    # Immediately reusable.
    again = create(alloc, manifest(type="NodePort", clusterIP=obj["spec"]["clusterIP"],
                                   ports=[{"port": 80, "nodePort": obj["spec"]["ports"][0]["nodePort"]}]))
    assert again["spec"]["clusterIP"] == obj["spec"]["clusterIP"]


# --- updates -------------------------------------------------------------------------------------------------

def update(alloc: ServiceAllocator, old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    new = copy.deepcopy(new)
    allocation = prepare_update(alloc, old, new)
    allocation.commit()
    return new, allocation


def test_reapply_keeps_allocations() -> None:
    alloc = allocator()
    original = manifest(type="NodePort", ports=[{"name": "http", "port": 80}, {"name": "https", "port": 443}])
    old = create(alloc, original)
    new, allocation = update(alloc, old, original)
    assert new["spec"]["clusterIP"] == old["spec"]["clusterIP"]
    assert new["spec"]["clusterIPs"] == old["spec"]["clusterIPs"]
    assert [p["nodePort"] for p in new["spec"]["ports"]] == [p["nodePort"] for p in old["spec"]["ports"]]
    assert (allocation.ips_added, allocation.ports_added, allocation.ips_released, allocation.ports_released) == \
        ([], [], [], [])


def test_reapply_load_balancer_local_keeps_health_check_port() -> None:
    alloc = allocator()
    original = manifest(type="LoadBalancer", externalTrafficPolicy="Local")
    old = create(alloc, original)
    new, allocation = update(alloc, old, original)
    assert new["spec"]["healthCheckNodePort"] == old["spec"]["healthCheckNodePort"]
    assert allocation.ports_added == [] and allocation.ports_released == []


def test_cluster_ip_to_node_port_allocates_node_ports() -> None:
    alloc = allocator()
    old = create(alloc, manifest())
    new, allocation = update(alloc, old, manifest(type="NodePort"))
    assert new["spec"]["clusterIP"] == old["spec"]["clusterIP"]
    assert new["spec"]["externalTrafficPolicy"] == "Cluster"
    assert allocation.ports_added == [new["spec"]["ports"][0]["nodePort"]]
    assert alloc.ports.used() == allocation.ports_added


def test_node_port_to_cluster_ip_releases_node_ports_on_commit() -> None:
    alloc = allocator()
    old = create(alloc, manifest(type="NodePort"))
    node_port = old["spec"]["ports"][0]["nodePort"]
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"  # a full PUT that still carries nodePort and externalTrafficPolicy
    allocation = prepare_update(alloc, old, new)
    assert "nodePort" not in new["spec"]["ports"][0] and "externalTrafficPolicy" not in new["spec"]
    assert allocation.ports_released == [node_port]
    assert alloc.ports.has(node_port)  # still held until the write succeeded
    allocation.commit()
    assert not alloc.ports.has(node_port)


def test_failed_write_keeps_old_node_ports() -> None:
    alloc = allocator()
    old = create(alloc, manifest(type="NodePort"))
    allocation = prepare_update(alloc, old, manifest())
    allocation.revert()
    assert alloc.ports.used() == [old["spec"]["ports"][0]["nodePort"]]


def test_cluster_ip_to_external_name_releases_the_ip() -> None:
    alloc = allocator()
    old = create(alloc, manifest())
    new = copy.deepcopy(old)
    new["spec"].update(type="ExternalName", externalName="db.example.com")
    allocation = prepare_update(alloc, old, new)
    for absent in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        assert absent not in new["spec"]
    assert allocation.ips_released == [old["spec"]["clusterIP"]]
    allocation.commit()
    assert alloc.ips.used() == []


def test_external_name_to_cluster_ip_allocates() -> None:
    alloc = allocator()
    obj = manifest(type="ExternalName", externalName="db.example.com")
    old = create(alloc, obj)
    new, allocation = update(alloc, old, manifest())
    assert_dynamic_ip(new["spec"]["clusterIP"])
    assert new["spec"]["ipFamilyPolicy"] == "SingleStack" and new["spec"]["ipFamilies"] == ["IPv4"]
    assert allocation.ips_added == [new["spec"]["clusterIP"]]


def test_load_balancer_to_cluster_ip_drops_lb_fields() -> None:
    alloc = allocator()
    old = create(alloc, manifest(type="LoadBalancer", externalTrafficPolicy="Local"))
    old["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}}
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    allocation = prepare_update(alloc, old, new)
    for absent in ("allocateLoadBalancerNodePorts", "healthCheckNodePort", "externalTrafficPolicy"):
        assert absent not in new["spec"]
    assert new["status"] == {"loadBalancer": {}}
    assert sorted(allocation.ports_released) == sorted([old["spec"]["ports"][0]["nodePort"],
                                                        old["spec"]["healthCheckNodePort"]])
    allocation.commit()
    assert alloc.ports.used() == []


def test_node_port_to_load_balancer_local_adds_health_check_port() -> None:
    alloc = allocator()
    old = create(alloc, manifest(type="NodePort"))
    new, allocation = update(alloc, old, manifest(type="LoadBalancer", externalTrafficPolicy="Local"))
    assert new["spec"]["ports"][0]["nodePort"] == old["spec"]["ports"][0]["nodePort"]
    assert allocation.ports_added == [new["spec"]["healthCheckNodePort"]]


def test_removing_a_port_releases_its_node_port() -> None:
    alloc = allocator()
    old = create(alloc, manifest(type="NodePort", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}]))
    new, allocation = update(alloc, old, manifest(type="NodePort", ports=[{"name": "a", "port": 80}]))
    assert new["spec"]["ports"][0]["nodePort"] == old["spec"]["ports"][0]["nodePort"]
    assert allocation.ports_released == [old["spec"]["ports"][1]["nodePort"]]
    assert alloc.ports.used() == [old["spec"]["ports"][0]["nodePort"]]


def test_update_status_is_kept_from_stored_object() -> None:
    alloc = allocator()
    old = create(alloc, manifest(type="LoadBalancer"))
    old["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}}
    new = manifest(type="LoadBalancer")
    new["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}
    new, _ = update(alloc, old, new)
    assert new["status"] == old["status"]


def test_validate_service_with_cidr_rejects_ipv6_without_allocating() -> None:
    from nanokube.api.service import validate_service

    obj = default_service(manifest(clusterIP="fd00::10", clusterIPs=["fd00::10"], ipFamilyPolicy="SingleStack"))
    assert validate_service(obj) == []
    assert [str(e) for e in validate_service(obj, service_cidr="10.96.0.0/12")] == [
        'spec.clusterIPs[0]: Invalid value: []string{"fd00::10"}: IPv6 is not configured on this cluster']
