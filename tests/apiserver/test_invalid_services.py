"""Invalid Services through the real server over HTTPS (and the real kubectl): each is refused with the code,
message and field paths Kubernetes v1.32 gives, and none of them leaves a trace in the store.

The create cases are the table of tests/api/test_service_validation.py (checked there against the allocator
directly); here they travel the whole way: HTTP decoding, the registry, allocation, validation, the store.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from tests.api.test_service_validation import CREATE_CASES, NODE_PORT_RANGE, assert_api_error
from tests.apiserver.helpers_http import SERVICES, Http, assert_ranges_match
from tests.conftest import Server, module_server

from nanokube.api.errors import ApiError

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")  # the range the case table's messages name
BOOTSTRAP_IPS = {"10.96.0.1", "10.96.0.10"}  # `kubernetes` and `kube-dns`


srv = module_server("--network", "loopback", "--components=", "--service-cidr", str(SERVICE_CIDR))


@pytest.fixture(scope="module")
def http(srv: Server) -> Http:
    return Http(srv)


def as_api_error(status: int, body: dict[str, Any]) -> ApiError:
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == status
    return ApiError(status, body.get("reason", ""), body.get("message", ""), body.get("details"))


def svc(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("selector", {"app": name})
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def refused_without_trace(http: Http, send: Callable[[], tuple[int, Any]]) -> ApiError:
    """Send a request that must fail; the store's revision (the list resourceVersion) must not move."""
    before = http.list_rv()
    status, body = send()
    assert http.list_rv() == before, f"a refused request changed the store: {body}"
    return as_api_error(status, body)


# --- creates -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("manifest", "ips", "ports", "code", "message", "fields"),
                         [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES])
def test_invalid_create_over_http(http: Http, manifest: dict[str, Any], ips: list[str], ports: list[int],
                                  code: int, message: str, fields: list[str]) -> None:
    assert set(ips) <= BOOTSTRAP_IPS, "IPs a case needs taken must be ones the server holds from its first start"
    holder = None
    if ports:  # the case needs these nodePorts held by someone else
        holder = http.ok("POST", SERVICES, svc("holder", type="NodePort", ports=[
            {"name": f"p{p}", "port": i + 1, "nodePort": p} for i, p in enumerate(ports)]))
    try:
        err = refused_without_trace(http, lambda: http("POST", SERVICES, copy.deepcopy(manifest)))
        assert_api_error(err, manifest["metadata"].get("name", ""), code, message, fields)
    finally:
        if holder:
            http.ok("DELETE", f"{SERVICES}/holder")


# --- updates -------------------------------------------------------------------------------------------------

# Services the update cases start from (created once; every case must leave them as they are).
BASES = {
    "u-cip": svc("u-cip", clusterIP="10.96.0.50"),
    "u-headless": svc("u-headless", clusterIP="None"),
    "u-np": svc("u-np", type="NodePort", ports=[{"port": 80, "nodePort": 30090}]),
    "u-lb": svc("u-lb", type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30501,
                loadBalancerClass="example.com/a"),
    "u-holder": svc("u-holder", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]),
}

NOT_NONE = "may not be set to 'None' for {} services"


def put(name: str, change: Callable[[dict[str, Any]], Any]) -> tuple[str, str, Callable[[dict[str, Any]], Any]]:
    return ("PUT", name, change)


def merge(name: str, patch: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return ("PATCH", name, patch)


# (id, request, code, message after 'Service "<name>" is invalid: ' (or the whole message), fields)
UPDATE_CASES: list[tuple[str, tuple[str, str, Any], int, str, list[str]]] = [
    ("change-cluster-ip-put", put("u-cip", lambda s: s.update(clusterIP="10.96.0.51", clusterIPs=["10.96.0.51"])),
     422, 'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.51"}: may not change once set', ["spec.clusterIPs[0]"]),
    ("change-cluster-ip-only", put("u-cip", lambda s: s.update(clusterIP="10.96.0.52")),
     422, 'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.52"}: may not change once set', ["spec.clusterIPs[0]"]),
    ("change-cluster-ip-merge-patch", merge("u-cip", {"spec": {"clusterIP": "10.96.0.53"}}),
     422, 'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.53"}: may not change once set', ["spec.clusterIPs[0]"]),
    ("cluster-ip-to-none", merge("u-cip", {"spec": {"clusterIP": "None", "clusterIPs": ["None"]}}),
     422, 'spec.clusterIPs[0]: Invalid value: []string{"None"}: may not change once set', ["spec.clusterIPs[0]"]),
    ("headless-gets-an-ip", merge("u-headless", {"spec": {"clusterIP": "10.96.0.60"}}),
     422, 'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.60"}: may not change once set', ["spec.clusterIPs[0]"]),
    ("headless-to-nodeport", merge("u-headless", {"spec": {"type": "NodePort"}}),
     422, 'spec.clusterIPs[0]: Invalid value: "None": ' + NOT_NONE.format("NodePort"), ["spec.clusterIPs[0]"]),
    ("headless-to-loadbalancer", merge("u-headless", {"spec": {"type": "LoadBalancer"}}),
     422, 'spec.clusterIPs[0]: Invalid value: "None": ' + NOT_NONE.format("LoadBalancer"), ["spec.clusterIPs[0]"]),
    ("clusterip-to-nodeport-taken-port", merge("u-cip", {"spec": {"type": "NodePort",
                                                                  "ports": [{"port": 80, "nodePort": 30080}]}}),
     422, "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
     ["spec.ports[0].nodePort"]),
    ("nodeport-to-80", put("u-np", lambda s: s["ports"][0].update(nodePort=80)),
     422, f"spec.ports[0].nodePort: Invalid value: 80: {NODE_PORT_RANGE}", ["spec.ports[0].nodePort"]),
    ("nodeport-to-taken", put("u-np", lambda s: s["ports"][0].update(nodePort=30080)),
     422, "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
     ["spec.ports[0].nodePort"]),
    ("nodeport-added-port-taken", put("u-np", lambda s: s.update(ports=[
        {**s["ports"][0], "name": "a"}, {"name": "b", "port": 81, "nodePort": 30080}])),
     422, "spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated",
     ["spec.ports[1].nodePort"]),
    ("to-externalname-with-new-cluster-ip", put("u-cip", lambda s: s.update(
        type="ExternalName", externalName="db.example.com", clusterIP="10.96.0.71", clusterIPs=["10.96.0.71"])),
     422, "spec.clusterIPs: Forbidden: may not be set for ExternalName services", ["spec.clusterIPs"]),
    ("to-externalname-without-name", merge("u-cip", {"spec": {"type": "ExternalName"}}),
     422, "spec.externalName: Required value", ["spec.externalName"]),
    ("health-check-port-changed", merge("u-lb", {"spec": {"healthCheckNodePort": 30502}}),
     422, "spec.healthCheckNodePort: Forbidden: field is immutable", ["spec.healthCheckNodePort"]),
    ("load-balancer-class-changed", merge("u-lb", {"spec": {"loadBalancerClass": "example.com/b"}}),
     422, 'spec.loadBalancerClass: Invalid value: "example.com/b": may not change once set',
     ["spec.loadBalancerClass"]),
    ("second-unnamed-port", put("u-cip", lambda s: s["ports"].append({"port": 81})),
     422, "[spec.ports[0].name: Required value, spec.ports[1].name: Required value]",
     ["spec.ports[0].name", "spec.ports[1].name"]),
    ("type-bogus", merge("u-cip", {"spec": {"type": "Foo"}}),
     422, 'spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
     '"NodePort"', ["spec.type"]),
    ("etp-local-on-clusterip", merge("u-cip", {"spec": {"externalTrafficPolicy": "Local"}}),
     422, 'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services',
     ["spec.externalTrafficPolicy"]),
    ("ip-family-switched", merge("u-cip", {"spec": {"ipFamilies": ["IPv6"]}}),
     422, 'spec.clusterIPs[0]: Invalid value: "10.96.0.50": expected an IPv6 value as indicated by `ipFamilies[0]`',
     ["spec.clusterIPs[0]"]),
    ("stale-resource-version", put("u-cip", lambda s: s.update(sessionAffinity="ClientIP")),
     409, 'Operation cannot be fulfilled on services "u-cip": the object has been modified; please apply your '
     "changes to the latest version and try again", []),
    ("name-differs-from-url", put("u-cip", lambda s: None),
     400, "the name of the object (other) does not match the name on the URL (u-cip)", []),
]


@pytest.fixture(scope="module")
def bases(http: Http) -> dict[str, dict[str, Any]]:
    return {name: http.ok("POST", SERVICES, copy.deepcopy(body)) for name, body in BASES.items()}


@pytest.mark.parametrize(("request_", "code", "message", "fields"), [c[1:] for c in UPDATE_CASES],
                         ids=[c[0] for c in UPDATE_CASES])
def test_invalid_update_over_http(http: Http, bases: dict[str, dict[str, Any]], request_: tuple[str, str, Any],
                                  code: int, message: str, fields: list[str]) -> None:
    method, name, change = request_
    current = http.ok("GET", f"{SERVICES}/{name}")
    assert current == bases[name], "an earlier refused update changed the Service"
    if method == "PUT":
        body = copy.deepcopy(current)
        change(body["spec"])
        if code == 409:
            body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) - 1)
        if code == 400:
            body["metadata"]["name"] = "other"
        err = refused_without_trace(http, lambda: http("PUT", f"{SERVICES}/{name}", body))
    else:
        err = refused_without_trace(http, lambda: http("PATCH", f"{SERVICES}/{name}", change,
                                                       ctype="application/merge-patch+json"))
    if code == 422:
        assert_api_error(err, name, code, message, fields)
    else:
        assert err.code == code and err.message == message
        assert err.reason == {409: "Conflict", 400: "BadRequest"}[code]


# --- the real kubectl ----------------------------------------------------------------------------------------

KUBECTL_CASES = [
    ("create", "nodeport-80",
     'The Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 80: ' + NODE_PORT_RANGE),
    ("apply", "two-unnamed-ports",
     'The Service "web" is invalid: \n* spec.ports[0].name: Required value\n* spec.ports[1].name: Required value'),
    ("create", "duplicate-port-name", 'The Service "web" is invalid: spec.ports[1].name: Duplicate value: "http"'),
    ("apply", "cluster-ip-outside-range",
     'The Service "web" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.5"}: failed to allocate IP '
     "10.0.0.5: the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12"),
]


@pytest.mark.parametrize(("verb", "case", "printed"), KUBECTL_CASES, ids=[f"{c[0]}-{c[1]}" for c in KUBECTL_CASES])
def test_kubectl_prints_the_kubernetes_message(srv: Server, http: Http, verb: str, case: str, printed: str) -> None:
    manifest = next(c[1] for c in CREATE_CASES if c[0] == case)
    before = http.list_rv()
    proc = srv.kubectl(verb, "-f", "-", input=_yaml(manifest), check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == printed + "\n"
    assert http.list_rv() == before


def test_kubectl_patch_changing_cluster_ip(srv: Server, http: Http, bases: dict[str, dict[str, Any]]) -> None:
    before = http.list_rv()
    proc = srv.kubectl("patch", "svc", "u-cip", "-p", '{"spec":{"clusterIP":"10.96.0.54"}}', check=False)
    assert proc.returncode == 1
    assert proc.stderr == ('The Service "u-cip" is invalid: spec.clusterIPs[0]: Invalid value: '
                           '[]string{"10.96.0.54"}: may not change once set\n')
    assert http.list_rv() == before


def _yaml(obj: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(obj)


# --- no trace ------------------------------------------------------------------------------------------------


def _named_values(manifests: list[dict[str, Any]]) -> tuple[set[str], set[int]]:
    """ClusterIPs and nodePorts the refused requests asked for that a valid Service could hold."""
    ips: set[str] = set()
    ports: set[int] = set()
    for m in manifests:
        spec = m.get("spec", {})
        for ip in [spec.get("clusterIP"), *(spec.get("clusterIPs") or [])]:
            try:
                addr = ipaddress.ip_address(ip or "")
            except ValueError:
                continue
            if addr in SERVICE_CIDR and addr not in (SERVICE_CIDR.network_address, SERVICE_CIDR.broadcast_address):
                ips.add(str(addr))
        for p in spec.get("ports") or []:
            if 30000 <= int(p.get("nodePort") or 0) <= 32767:
                ports.add(int(p["nodePort"]))
        if 30000 <= int(spec.get("healthCheckNodePort") or 0) <= 32767:
            ports.add(int(spec["healthCheckNodePort"]))
    return ips - BOOTSTRAP_IPS, ports


def _update_manifests(bases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for _, (method, name, change), *_ in UPDATE_CASES:
        body = copy.deepcopy(bases[name])
        if method == "PUT":
            change(body["spec"])
        else:
            body["spec"].update(change.get("spec", {}))
        out.append(body)
    return out


def test_refused_requests_left_no_trace(srv: Server, http: Http, bases: dict[str, dict[str, Any]]) -> None:
    services = http.ok("GET", "/api/v1/services")["items"]
    names = {s["metadata"]["name"] for s in services}
    assert names == {"kubernetes", "kube-dns", *BASES}, "a refused create left a Service behind"
    for s in services:
        if s["metadata"]["name"] in bases:
            assert s == bases[s["metadata"]["name"]], "a refused update changed a Service"
    # Every allocation record belongs to a live Service, and each Service's values are recorded.
    assert_ranges_match(srv, services)

    # Everything the refused requests asked for is still free: valid Services can take all of it now.
    wanted_ips, wanted_ports = _named_values([c[1] for c in CREATE_CASES] + _update_manifests(bases))
    held_ports = {p["nodePort"] for s in services for p in s["spec"].get("ports", []) if p.get("nodePort")} | {
        s["spec"]["healthCheckNodePort"] for s in services if s["spec"].get("healthCheckNodePort")}
    held_ips = {ip for s in services for ip in s["spec"].get("clusterIPs") or []}
    assert wanted_ips and wanted_ports
    free_ports = sorted(wanted_ports - held_ports)
    assert {30080, 30081, 30500, 30100} <= set(free_ports) | held_ports
    for i, ip in enumerate(sorted(wanted_ips - held_ips)):
        http.ok("POST", SERVICES, svc(f"take-ip-{i}", clusterIP=ip))
    taker = http.ok("POST", SERVICES, svc("take-ports", type="NodePort", ports=[
        {"name": f"p{i}", "port": i + 1, "nodePort": port} for i, port in enumerate(free_ports)]))
    assert [p["nodePort"] for p in taker["spec"]["ports"]] == free_ports
    assert_ranges_match(srv, http.ok("GET", "/api/v1/services")["items"])
