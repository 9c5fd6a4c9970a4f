"""Invalid Services: each case is the manifest, and the HTTP code, message and field paths Kubernetes v1.32 gives.

Creates and updates go through the Service strategy (defaulting, allocation, then ValidateService /
ValidateServiceUpdate: service_writes.py), exactly the path the API server takes.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from tests.api.service_writes import prepare_create, prepare_update

from nanokube.api.errors import ApiError
from nanokube.apiserver.allocators import ServiceAllocator

DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
           "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
           "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
DNS1123_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                 "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1123_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                     "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                     "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
QNAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
              "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
               "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
               "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
PORT_RANGE = "must be between 1 and 65535, inclusive"
BAD_IP = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
NODE_PORT_RANGE = "provided port is not in the valid range. The range of valid ports is 30000-32767"
LB_ONLY = "may only be used when `type` is 'LoadBalancer'"


def port_key(port: int, protocol: str = "TCP") -> str:
    return (f'core.ServicePort{{Name:"", Protocol:"{protocol}", AppProtocol:(*string)(nil), Port:{port}, '
            'TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}')


def svc(name: str = "web", **spec: Any) -> dict[str, Any]:
    spec.setdefault("selector", {"app": "web"})
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    d = copy.deepcopy(d)
    for key in keys:
        d["spec"].pop(key, None)
    return d


# (id, manifest, preloaded ips, preloaded ports, code, message after 'Service "<name>" is invalid: ', fields)
CREATE_CASES: list[tuple[str, dict[str, Any], list[str], list[int], int, str, list[str]]] = [
    ("nodeport-80", svc(type="NodePort", ports=[{"port": 80, "nodePort": 80}]), [], [], 422,
     f"spec.ports[0].nodePort: Invalid value: 80: {NODE_PORT_RANGE}", ["spec.ports[0].nodePort"]),
    ("nodeport-taken", svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]), [], [30080], 422,
     "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated", ["spec.ports[0].nodePort"]),
    ("second-port-nodeport-taken", svc(type="NodePort", ports=[{"name": "a", "port": 80},
                                                               {"name": "b", "port": 81, "nodePort": 30081}]),
     [], [30081], 422, "spec.ports[1].nodePort: Invalid value: 30081: provided port is already allocated",
     ["spec.ports[1].nodePort"]),
    ("duplicate-nodeport", svc(type="NodePort", ports=[{"name": "a", "port": 80, "nodePort": 30080},
                                                       {"name": "b", "port": 81, "nodePort": 30080}]), [], [], 422,
     "spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated", ["spec.ports[1].nodePort"]),
    ("cluster-ip-taken", svc(clusterIP="10.96.0.10"), ["10.96.0.10"], [], 422,
     'spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: failed to allocate IP 10.96.0.10: '
     "provided IP is already allocated", ["spec.clusterIPs"]),
    ("cluster-ip-outside-range", svc(clusterIP="10.0.0.5"), [], [], 422,
     'spec.clusterIPs: Invalid value: []string{"10.0.0.5"}: failed to allocate IP 10.0.0.5: the provided IP '
     "(10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12", ["spec.clusterIPs"]),
    ("cluster-ip-network-address", svc(clusterIP="10.96.0.0"), [], [], 422,
     'spec.clusterIPs: Invalid value: []string{"10.96.0.0"}: failed to allocate IP 10.96.0.0: the provided IP '
     "(10.96.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/12", ["spec.clusterIPs"]),
    ("allocation-error-hides-validation", svc(name="Bad_Name", clusterIP="10.96.0.10", sessionAffinity="x"),
     ["10.96.0.10"], [], 422,
     'spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: failed to allocate IP 10.96.0.10: '
     "provided IP is already allocated", ["spec.clusterIPs"]),
    ("two-unnamed-ports", svc(ports=[{"port": 80}, {"port": 443}]), [], [], 422,
     "[spec.ports[0].name: Required value, spec.ports[1].name: Required value]",
     ["spec.ports[0].name", "spec.ports[1].name"]),
    ("duplicate-port", svc(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}]), [], [], 422,
     f"spec.ports[1]: Duplicate value: {port_key(80)}", ["spec.ports[1]"]),
    ("duplicate-port-name", svc(ports=[{"name": "http", "port": 80}, {"name": "http", "port": 81}]), [], [], 422,
     'spec.ports[1].name: Duplicate value: "http"', ["spec.ports[1].name"]),
    ("bad-port-name", svc(ports=[{"name": "HTTP", "port": 80}]), [], [], 422,
     f'spec.ports[0].name: Invalid value: "HTTP": {DNS1123_LABEL}', ["spec.ports[0].name"]),
    ("port-name-with-dots", svc(ports=[{"name": "web.http", "port": 80}]), [], [], 422,
     'spec.ports[0].name: Invalid value: "web.http": must not contain dots', ["spec.ports[0].name"]),
    ("bad-name", svc(name="Web_1"), [], [], 422,
     f'metadata.name: Invalid value: "Web_1": {DNS1035}', ["metadata.name"]),
    ("name-starts-with-digit", svc(name="1web"), [], [], 422,
     f'metadata.name: Invalid value: "1web": {DNS1035}', ["metadata.name"]),
    ("name-too-long", svc(name="a" * 64), [], [], 422,
     f'metadata.name: Invalid value: "{"a" * 64}": must be no more than 63 characters', ["metadata.name"]),
    ("externalname-with-cluster-ip", svc(type="ExternalName", externalName="db.example.com", clusterIP="10.96.0.50"),
     [], [], 422, "spec.clusterIPs: Forbidden: may not be set for ExternalName services", ["spec.clusterIPs"]),
    ("externalname-bad-name", svc(type="ExternalName", externalName="my_db.example.com."), [], [], 422,
     f'spec.externalName: Invalid value: "my_db.example.com": {DNS1123_SUBDOMAIN}', ["spec.externalName"]),
    ("externalname-missing", svc(type="ExternalName"), [], [], 422,
     "spec.externalName: Required value", ["spec.externalName"]),
    ("externalname-with-families", svc(type="ExternalName", externalName="db.example.com", ipFamilies=["IPv4"],
                                       ipFamilyPolicy="SingleStack"), [], [], 422,
     "[spec.ipFamilies: Forbidden: may not be set for ExternalName services, "
     "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services]",
     ["spec.ipFamilies", "spec.ipFamilyPolicy"]),
    ("headless-with-nodeport", svc(clusterIP="None", ports=[{"port": 80, "nodePort": 30080}]), [], [], 422,
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'", ["spec.ports[0].nodePort"]),
    ("nodeport-on-clusterip", svc(ports=[{"port": 80, "nodePort": 30080}]), [], [], 422,
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'", ["spec.ports[0].nodePort"]),
    ("nodeport-headless", svc(type="NodePort", clusterIP="None"), [], [], 422,
     "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services",
     ["spec.clusterIPs[0]"]),
    ("loadbalancer-headless", svc(type="LoadBalancer", clusterIP="None"), [], [], 422,
     "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer services",
     ["spec.clusterIPs[0]"]),
    ("no-ports", svc(ports=[]), [], [], 422, "spec.ports: Required value", ["spec.ports"]),
    ("bad-protocol", svc(ports=[{"port": 80, "protocol": "HTTP"}]), [], [], 422,
     'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
     ["spec.ports[0].protocol"]),
    ("port-0", svc(ports=[{"port": 0}]), [], [], 422,
     f"[spec.ports[0].port: Invalid value: 0: {PORT_RANGE}, spec.ports[0].targetPort: Invalid value: 0: {PORT_RANGE}]",
     ["spec.ports[0].port", "spec.ports[0].targetPort"]),
    ("port-missing", svc(ports=[{"targetPort": 8080}]), [], [], 422,
     f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}", ["spec.ports[0].port"]),
    ("port-70000", svc(ports=[{"port": 70000, "targetPort": 8080}]), [], [], 422,
     f"spec.ports[0].port: Invalid value: 70000: {PORT_RANGE}", ["spec.ports[0].port"]),
    ("target-port-70000", svc(ports=[{"port": 80, "targetPort": 70000}]), [], [], 422,
     f"spec.ports[0].targetPort: Invalid value: 70000: {PORT_RANGE}", ["spec.ports[0].targetPort"]),
    ("target-port-too-long", svc(ports=[{"port": 80, "targetPort": "a-very-long-port-name"}]), [], [], 422,
     'spec.ports[0].targetPort: Invalid value: "a-very-long-port-name": must be no more than 15 characters',
     ["spec.ports[0].targetPort"]),
    ("target-port-no-letter", svc(ports=[{"port": 80, "targetPort": "8080"}]), [], [], 422,
     'spec.ports[0].targetPort: Invalid value: "8080": must contain at least one letter (a-z)',
     ["spec.ports[0].targetPort"]),
    ("target-port-uppercase", svc(ports=[{"port": 80, "targetPort": "Http"}]), [], [], 422,
     'spec.ports[0].targetPort: Invalid value: "Http": must contain only alpha-numeric characters (a-z, 0-9), '
     "and hyphens (-)", ["spec.ports[0].targetPort"]),
    ("target-port-hyphens", svc(ports=[{"port": 80, "targetPort": "-web--x"}]), [], [], 422,
     '[spec.ports[0].targetPort: Invalid value: "-web--x": must not contain consecutive hyphens, '
     'spec.ports[0].targetPort: Invalid value: "-web--x": must not begin or end with a hyphen]',
     ["spec.ports[0].targetPort", "spec.ports[0].targetPort"]),
    ("bad-app-protocol", svc(ports=[{"port": 80, "appProtocol": "my proto"}]), [], [], 422,
     f'spec.ports[0].appProtocol: Invalid value: "my proto": {QNAME_PART}', ["spec.ports[0].appProtocol"]),
    ("session-affinity-bogus", svc(sessionAffinity="Sticky"), [], [], 422,
     'spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"',
     ["spec.sessionAffinity"]),
    ("timeout-0", svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}),
     [], [], 422,
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400",
     ["spec.sessionAffinityConfig.clientIP.timeoutSeconds"]),
    ("timeout-86401", svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}}),
     [], [], 422,
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less "
     "than 86400", ["spec.sessionAffinityConfig.clientIP.timeoutSeconds"]),
    ("external-ip-loopback", svc(externalIPs=["127.0.0.1"]), [], [], 422,
     'spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)',
     ["spec.externalIPs[0]"]),
    ("external-ip-unspecified", svc(externalIPs=["192.168.1.1", "0.0.0.0"]), [], [], 422,
     'spec.externalIPs[1]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)', ["spec.externalIPs[1]"]),
    ("external-ip-link-local", svc(externalIPs=["169.254.169.254"]), [], [], 422,
     'spec.externalIPs[0]: Invalid value: "169.254.169.254": may not be in the link-local range '
     "(169.254.0.0/16, fe80::/10)", ["spec.externalIPs[0]"]),
    ("external-ip-garbage", svc(externalIPs=["not-an-ip"]), [], [], 422,
     f'spec.externalIPs[0]: Invalid value: "not-an-ip": {BAD_IP}', ["spec.externalIPs[0]"]),
    ("bad-type", svc(type="Foo"), [], [], 422,
     'spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
     '"NodePort"', ["spec.type"]),
    ("etp-local-on-clusterip", svc(externalTrafficPolicy="Local"), [], [], 422,
     'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services',
     ["spec.externalTrafficPolicy"]),
    ("etp-bogus-on-nodeport", svc(type="NodePort", externalTrafficPolicy="Global"), [], [], 422,
     'spec.externalTrafficPolicy: Unsupported value: "Global": supported values: "Cluster", "Local"',
     ["spec.externalTrafficPolicy"]),
    ("health-check-port-on-clusterip", svc(healthCheckNodePort=30100), [], [], 422,
     "spec.healthCheckNodePort: Invalid value: 30100: may only be set when `type` is 'LoadBalancer' and "
     "`externalTrafficPolicy` is 'Local'", ["spec.healthCheckNodePort"]),
    ("itp-bogus", svc(internalTrafficPolicy="Node"), [], [], 422,
     'spec.internalTrafficPolicy: Unsupported value: "Node": supported values: "Cluster", "Local"',
     ["spec.internalTrafficPolicy"]),
    ("traffic-distribution-bogus", svc(trafficDistribution="Nearest"), [], [], 422,
     'spec.trafficDistribution: Unsupported value: "Nearest": supported values: "PreferClose"',
     ["spec.trafficDistribution"]),
    ("source-ranges-on-clusterip", svc(loadBalancerSourceRanges=["10.0.0.0/8"]), [], [], 422,
     f"spec.LoadBalancerSourceRanges: Forbidden: {LB_ONLY}", ["spec.LoadBalancerSourceRanges"]),
    ("source-range-bad-cidr", svc(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/33"]), [], [], 422,
     'spec.LoadBalancerSourceRanges[0]: Invalid value: "10.0.0.0/33": must be a valid CIDR value, '
     "(e.g. 10.9.8.0/24 or 2001:db8::/64)", ["spec.LoadBalancerSourceRanges[0]"]),
    ("allocate-lb-nodeports-on-nodeport", svc(type="NodePort", allocateLoadBalancerNodePorts=False), [], [], 422,
     f"spec.allocateLoadBalancerNodePorts: Forbidden: {LB_ONLY}", ["spec.allocateLoadBalancerNodePorts"]),
    ("lb-class-on-clusterip", svc(loadBalancerClass="example.com/lb"), [], [], 422,
     f"spec.loadBalancerClass: Forbidden: {LB_ONLY}", ["spec.loadBalancerClass"]),
    ("bad-selector-key", svc(selector={"-app": "web"}), [], [], 422,
     f'spec.selector: Invalid value: "-app": {QNAME_PART}', ["spec.selector"]),
    ("bad-selector-value", svc(selector={"app": "web server"}), [], [], 422,
     f'spec.selector: Invalid value: "web server": {LABEL_VALUE}', ["spec.selector"]),
    ("bad-label", {**svc(), "metadata": {"name": "web", "namespace": "default", "labels": {"app": "-x"}}}, [], [],
     422, f'metadata.labels: Invalid value: "-x": {LABEL_VALUE}', ["metadata.labels"]),
    ("missing-name", {**svc(), "metadata": {"namespace": "default"}}, [], [], 422,
     "metadata.name: Required value: name or generateName is required", ["metadata.name"]),
    ("ipv6-cluster-ip", svc(clusterIP="fd00::10"), [], [], 422,
     'spec.clusterIPs[0]: Invalid value: []string{"fd00::10"}: IPv6 is not configured on this cluster',
     ["spec.clusterIPs[0]"]),
    ("ip-families-ipv6", svc(ipFamilies=["IPv6"]), [], [], 422,
     'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster', ["spec.ipFamilies[0]"]),
    ("prefer-dual-stack-two-families", svc(ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"]),
     [], [], 422, 'spec.ipFamilies[1]: Invalid value: "IPv6": not configured on this cluster',
     ["spec.ipFamilies[1]"]),
    ("require-dual-stack", svc(ipFamilyPolicy="RequireDualStack"), [], [], 422,
     'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services',
     ["spec.ipFamilyPolicy"]),
    ("single-stack-two-families", svc(ipFamilyPolicy="SingleStack", ipFamilies=["IPv4", "IPv6"]), [], [], 422,
     "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when "
     "multiple IP families are specified", ["spec.ipFamilyPolicy"]),
    ("ip-family-policy-bogus", svc(ipFamilyPolicy="Dual"), [], [], 422,
     'spec.ipFamilyPolicy: Unsupported value: "Dual": supported values: "PreferDualStack", "RequireDualStack", '
     '"SingleStack"', ["spec.ipFamilyPolicy"]),
    ("ip-family-bogus", svc(ipFamilies=["IPv5"]), [], [], 422,
     'spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"', ["spec.ipFamilies[0]"]),
    ("cluster-ips-mismatch", svc(clusterIP="10.96.0.20", clusterIPs=["10.96.0.21"]), [], [], 422,
     'spec.clusterIPs: Invalid value: []string{"10.96.0.21"}: first value must match `clusterIP`',
     ["spec.clusterIPs"]),
    ("cluster-ips-without-cluster-ip", svc(clusterIPs=["10.96.0.21"]), [], [], 422,
     'spec.clusterIPs: Invalid value: []string{"10.96.0.21"}: must be empty when `clusterIP` is not specified',
     ["spec.clusterIPs"]),
    ("none-not-alone", svc(clusterIP="None", clusterIPs=["None", "10.96.0.5"]), [], [], 422,
     "spec.clusterIPs: Invalid value: []string{\"None\", \"10.96.0.5\"}: 'None' must be the first and only value",
     ["spec.clusterIPs"]),
    ("cluster-ip-garbage", svc(clusterIP="10.96.0.300"), [], [], 422,
     f'spec.clusterIPs[0]: Invalid value: "10.96.0.300": {BAD_IP}', ["spec.clusterIPs[0]"]),
    ("two-ipv4-cluster-ips", svc(clusterIP="10.96.0.20", clusterIPs=["10.96.0.20", "10.96.0.21"],
                                 ipFamilyPolicy="PreferDualStack"), [], [], 422,
     'spec.clusterIPs: Invalid value: []string{"10.96.0.20", "10.96.0.21"}: may specify no more than one IP for '
     "each IP family", ["spec.clusterIPs"]),
    ("health-check-port-taken", svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30500),
     [], [30500], 500,
     "failed to allocate requested HealthCheck NodePort 30500: provided port is already allocated", []),
]


def make_allocator(ips: list[str] = (), ports: list[int] = (), cidr: str = "10.96.0.0/12",
                   node_ports: str = "30000-32767") -> ServiceAllocator:
    allocator = ServiceAllocator(cidr, node_ports, rng=random.Random(7))
    allocator.load(ips, ports)
    return allocator


def assert_api_error(err: ApiError, name: str, code: int, message: str, fields: list[str]) -> None:
    assert err.code == code
    if code == 422:
        assert err.reason == "Invalid"
        assert err.message == f'Service "{name}" is invalid: {message}'
        assert err.details is not None and err.details["kind"] == "Service"
        assert [c["field"] for c in err.details["causes"]] == fields
        for cause in err.details["causes"]:
            assert not cause["message"].startswith(cause["field"])
    else:
        assert err.reason == "InternalError"
        assert err.message == f"Internal error occurred: {message}"
        assert err.details == {"causes": [{"message": message}]}


def test_at_least_45_invalid_create_cases() -> None:
    assert len(CREATE_CASES) >= 45


@pytest.mark.parametrize(("manifest", "ips", "ports", "code", "message", "fields"),
                         [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES])
def test_invalid_create(manifest: dict[str, Any], ips: list[str], ports: list[int], code: int, message: str,
                        fields: list[str]) -> None:
    allocator = make_allocator(ips, ports)
    before_ips, before_ports = allocator.ips.used(), allocator.ports.used()
    with pytest.raises(ApiError) as caught:
        prepare_create(allocator, copy.deepcopy(manifest))
    assert_api_error(caught.value, manifest["metadata"].get("name", ""), code, message, fields)
    # Whatever was reserved before failing is given back.
    assert allocator.ips.used() == before_ips
    assert allocator.ports.used() == before_ports


def test_ip_range_full_is_500() -> None:
    allocator = make_allocator(cidr="10.96.0.0/29")
    for i in range(6):
        prepare_create(allocator, svc(name=f"s{i}"))
    with pytest.raises(ApiError) as caught:
        prepare_create(allocator, svc(name="s6"))
    assert_api_error(caught.value, "s6", 500, "failed to allocate a serviceIP: range is full", [])


def test_node_port_range_full_is_500_and_reverts_the_ip() -> None:
    allocator = make_allocator(node_ports="30000-30001")
    prepare_create(allocator, svc(name="a", type="NodePort", ports=[{"name": "x", "port": 1}, {"name": "y", "port": 2}]))
    used_ips = allocator.ips.used()
    with pytest.raises(ApiError) as caught:
        prepare_create(allocator, svc(name="b", type="NodePort"))
    assert_api_error(caught.value, "b", 500, "failed to allocate a nodePort: range is full", [])
    assert allocator.ips.used() == used_ips


def test_validation_failure_reverts_allocations() -> None:
    allocator = make_allocator()
    with pytest.raises(ApiError):
        prepare_create(allocator, svc(type="NodePort", sessionAffinity="Sticky"))
    assert allocator.ips.used() == [] and allocator.ports.used() == []


def test_kubectl_style_message_lists_all_causes() -> None:
    allocator = make_allocator()
    with pytest.raises(ApiError) as caught:
        prepare_create(allocator, svc(name="my-service", ports=[{"port": 80}, {"port": 443}]))
    status = caught.value.status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.ports[0].name"},
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.ports[1].name"},
    ]


# --- updates ---------------------------------------------------------------------------------------------------

def created(allocator: ServiceAllocator, manifest: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(manifest)
    prepare_create(allocator, obj).commit()
    obj["metadata"].update(resourceVersion="1", uid="u-1", creationTimestamp="2024-01-01T00:00:00Z")
    return obj


def update_error(allocator: ServiceAllocator, old: dict[str, Any], new: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        prepare_update(allocator, old, new)
    return caught.value


def test_update_changing_cluster_ip() -> None:
    allocator = make_allocator()
    old = created(allocator, svc(clusterIP="10.96.0.50"))
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.51"
    err = update_error(allocator, old, new)
    assert_api_error(err, "web", 422, 'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.51"}: may not change once set',
                     ["spec.clusterIPs[0]"])
    assert allocator.ips.used() == ["10.96.0.50"]


def test_update_headless_to_cluster_ip() -> None:
    allocator = make_allocator()
    old = created(allocator, svc(clusterIP="None"))
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.60"
    err = update_error(allocator, old, new)
    assert_api_error(err, "web", 422, 'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.60"}: may not change once set',
                     ["spec.clusterIPs[0]"])
    assert allocator.ips.used() == []


def test_update_health_check_port_is_immutable() -> None:
    allocator = make_allocator()
    old = created(allocator, svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30500))
    new = copy.deepcopy(old)
    new["spec"]["healthCheckNodePort"] = 30501
    err = update_error(allocator, old, new)
    assert_api_error(err, "web", 422, "spec.healthCheckNodePort: Forbidden: field is immutable",
                     ["spec.healthCheckNodePort"])


def test_update_load_balancer_class_is_immutable() -> None:
    allocator = make_allocator()
    old = created(allocator, svc(type="LoadBalancer", loadBalancerClass="example.com/a"))
    new = copy.deepcopy(old)
    new["spec"]["loadBalancerClass"] = "example.com/b"
    err = update_error(allocator, old, new)
    assert_api_error(err, "web", 422, 'spec.loadBalancerClass: Invalid value: "example.com/b": may not change once set',
                     ["spec.loadBalancerClass"])


def test_update_new_node_port_taken_reverts() -> None:
    allocator = make_allocator(ports=[31000])
    old = created(allocator, svc(type="NodePort", ports=[{"name": "a", "port": 80}]))
    new = copy.deepcopy(old)
    new["spec"]["ports"].append({"name": "b", "port": 81})
    new["spec"]["ports"].append({"name": "c", "port": 82, "nodePort": 31000})
    used = allocator.ports.used()
    err = update_error(allocator, old, new)
    assert_api_error(err, "web", 422, "spec.ports[2].nodePort: Invalid value: 31000: provided port is already allocated",
                     ["spec.ports[2].nodePort"])
    assert allocator.ports.used() == used


def test_update_to_external_name_with_changed_cluster_ip_is_rejected() -> None:
    allocator = make_allocator()
    old = created(allocator, svc(clusterIP="10.96.0.70"))
    new = copy.deepcopy(old)
    new["spec"].update(type="ExternalName", externalName="db.example.com", clusterIP="10.96.0.71",
                       clusterIPs=["10.96.0.71"])
    err = update_error(allocator, old, new)
    assert err.code == 422
    assert "spec.clusterIPs: Forbidden: may not be set for ExternalName services" in err.message


def test_update_name_is_immutable() -> None:
    allocator = make_allocator()
    old = created(allocator, svc())
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "other"
    err = update_error(allocator, old, new)
    assert err.code == 422
    assert err.message.startswith('Service "other" is invalid: metadata.name: Invalid value: "other": field is immutable')
