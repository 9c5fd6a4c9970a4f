"""v1 Service semantics: decode-time defaults, validation and the update-time field juggling.

Follows Kubernetes v1.32: pkg/apis/core/v1/defaults.go (SetDefaults_Service),
pkg/apis/core/validation/validation.go (ValidateService, ValidateServiceUpdate and helpers),
pkg/registry/core/service/strategy.go (dropTypeDependentFields) and
pkg/registry/core/service/storage/storage.go (normalizeClusterIPs, patchAllocatedValues, defaultOnRead).
Objects are plain JSON dicts; absent and zero values are treated alike, as Go's omitempty does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from ipaddress import IPv6Address as _IPv6
from typing import Any

from nanokube.api.errors import (
    GO_NIL,
    FieldError,
    duplicate,
    forbidden,
    go_service_port_key,
    go_typed_strings,
    invalid,
    not_supported,
    required,
)
from nanokube.api.validation import (
    is_valid_cidr,
    is_valid_ip,
    is_valid_port_name,
    is_valid_port_num,
    name_is_dns1035_label,
    parse_ip_sloppy,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_labels,
    validate_non_special_ip,
    validate_object_meta,
    validate_object_meta_update,
    validate_qualified_name,
)

CLUSTER_IP_NONE = "None"
CLUSTER_IP = "ClusterIP"
NODE_PORT = "NodePort"
LOAD_BALANCER = "LoadBalancer"
EXTERNAL_NAME = "ExternalName"
SERVICE_TYPES = (CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT)
PROTOCOLS = ("SCTP", "TCP", "UDP")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
SINGLE_STACK, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK = "SingleStack", "PreferDualStack", "RequireDualStack"
DEFAULT_CLIENT_IP_TIMEOUT = 10800
MAX_CLIENT_IP_TIMEOUT = 86400
ANNOTATION_TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
ANNOTATION_TOPOLOGY_HINTS = "service.kubernetes.io/topology-aware-hints"
ANNOTATION_LB_SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"

validate_service_name = name_is_dns1035_label


# --- small typed readers ---------------------------------------------------------------------------------------

def spec_of(svc: Mapping[str, Any]) -> dict[str, Any]:
    spec = svc.get("spec")
    return spec if isinstance(spec, dict) else {}


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def ports_of(svc: Mapping[str, Any]) -> list[dict[str, Any]]:
    ports = spec_of(svc).get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def service_type(svc: Mapping[str, Any]) -> str:
    return spec_of(svc).get("type") or ""


def cluster_ips(svc: Mapping[str, Any]) -> list[str]:
    return list(spec_of(svc).get("clusterIPs") or [])


def ip_families(svc: Mapping[str, Any]) -> list[str]:
    return list(spec_of(svc).get("ipFamilies") or [])


def is_headless(svc: Mapping[str, Any]) -> bool:
    ips = spec_of(svc).get("clusterIPs") or []
    return len(ips) == 1 and ips[0] == CLUSTER_IP_NONE


def externally_accessible(svc: Mapping[str, Any]) -> bool:
    kind = service_type(svc)
    return kind in (LOAD_BALANCER, NODE_PORT) or (kind == CLUSTER_IP and bool(spec_of(svc).get("externalIPs")))


def needs_health_check(svc: Mapping[str, Any]) -> bool:
    return service_type(svc) == LOAD_BALANCER and spec_of(svc).get("externalTrafficPolicy") == "Local"


def needs_cluster_ip(svc: Mapping[str, Any]) -> bool:
    return service_type(svc) != EXTERNAL_NAME


def needs_node_port(svc: Mapping[str, Any]) -> bool:
    return service_type(svc) in (NODE_PORT, LOAD_BALANCER)


def should_allocate_node_ports(svc: Mapping[str, Any]) -> bool:
    kind = service_type(svc)
    if kind == NODE_PORT:
        return True
    if kind == LOAD_BALANCER:
        return spec_of(svc).get("allocateLoadBalancerNodePorts") is not False
    return False


def held_ips(svc: Mapping[str, Any]) -> list[str]:
    """The cluster IPs a stored Service holds (releaseClusterIPs): none for ExternalName or headless Services."""
    if service_type(svc) == EXTERNAL_NAME:
        return []
    spec = spec_of(svc)
    ips = [ip for ip in (spec.get("clusterIPs") or []) if ip]
    if not ips and spec.get("clusterIP"):
        ips = [spec["clusterIP"]]
    if ips and ips[0] == CLUSTER_IP_NONE:
        return []
    return ips


def held_ports(svc: Mapping[str, Any]) -> list[int]:
    """The node ports a stored Service holds (releaseAllocatedResources): every nodePort, and the
    healthCheckNodePort only while the Service needs one (LoadBalancer with externalTrafficPolicy Local)."""
    ports = [as_int(p.get("nodePort")) for p in ports_of(svc) if as_int(p.get("nodePort"))]
    health = as_int(spec_of(svc).get("healthCheckNodePort"))
    if needs_health_check(svc) and health:
        ports.append(health)
    return list(dict.fromkeys(ports))


def _set_or_drop(mapping: dict[str, Any], key: str, value: Any) -> None:
    if value in (None, "", 0, []) and not isinstance(value, bool):
        mapping.pop(key, None)
    else:
        mapping[key] = value


# --- decode-time defaulting (SetDefaults_Service) --------------------------------------------------------------

def default_service(svc: dict[str, Any]) -> dict[str, Any]:
    """Apply v1 defaulting in place (idempotent) and return the same dict."""
    spec = svc.get("spec")
    if not isinstance(spec, dict):
        spec = svc["spec"] = {}
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        client_ip = config.get("clientIP") if isinstance(config, dict) else None
        if not isinstance(client_ip, dict) or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}}
    if not spec.get("type"):
        spec["type"] = CLUSTER_IP
    for port in ports_of(svc):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        target = port.get("targetPort")
        if target is None or target == 0 or target == "":
            port["targetPort"] = as_int(port.get("port"))
    if externally_accessible(svc) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and spec["type"] in (NODE_PORT, LOAD_BALANCER, CLUSTER_IP):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == LOAD_BALANCER:
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        status = svc.get("status")
        ingress = (status.get("loadBalancer") or {}).get("ingress") if isinstance(status, dict) else None
        for entry in ingress or []:
            if isinstance(entry, dict) and entry.get("ip") and entry.get("ipMode") is None:
                entry["ipMode"] = "VIP"
    return svc


def default_on_read(svc: dict[str, Any], primary_family: str = "IPv4") -> dict[str, Any]:
    """defaultOnReadService: fill clusterIPs/ipFamilies of objects stored before those fields existed."""
    spec = svc.get("spec")
    if not isinstance(spec, dict):
        return svc
    normalize_cluster_ips(svc, None)
    if needs_cluster_ip(svc) and not spec.get("ipFamilies"):
        other = "IPv6" if primary_family == "IPv4" else "IPv4"
        if spec.get("clusterIP") == CLUSTER_IP_NONE:
            if not spec.get("selector"):
                spec["ipFamilyPolicy"] = REQUIRE_DUAL_STACK
                spec["ipFamilies"] = [primary_family, other]
            else:
                spec["ipFamilyPolicy"] = SINGLE_STACK
                spec["ipFamilies"] = [primary_family]
        else:
            families = ["IPv6" if isinstance(parse_ip_sloppy(ip), _IPv6) else "IPv4" for ip in cluster_ips(svc)]
            if families:
                spec["ipFamilies"] = families
            if len(families) == 1:
                spec["ipFamilyPolicy"] = SINGLE_STACK
            elif len(families) == 2:
                spec["ipFamilyPolicy"] = REQUIRE_DUAL_STACK
    if service_type(svc) == EXTERNAL_NAME:
        spec.pop("internalTrafficPolicy", None)
    return svc


# --- storage-hook field juggling -----------------------------------------------------------------------------

def normalize_cluster_ips(new: dict[str, Any], old: Mapping[str, Any] | None) -> None:
    """Keep clusterIP and clusterIPs in step for clients that only know one of them (normalizeClusterIPs)."""
    spec = new.setdefault("spec", {})
    new_ip = spec.get("clusterIP") or ""
    new_ips = spec.get("clusterIPs") or []
    if old is None:
        if new_ip and not new_ips:
            spec["clusterIPs"] = [new_ip]
        return
    old_spec = spec_of(old)
    old_ip = old_spec.get("clusterIP") or ""
    old_ips = old_spec.get("clusterIPs") or []
    if old_ips and not new_ips and old_ip == new_ip:
        spec["clusterIPs"] = list(old_ips)
        new_ips = spec["clusterIPs"]
    if old_ip != new_ip:
        same_plural = list(old_ips) == list(new_ips)
        if old_ip and not new_ip:
            if same_plural:
                spec.pop("clusterIPs", None)
        elif same_plural:
            spec["clusterIPs"] = [new_ip]


def patch_allocated_values(new: dict[str, Any], old: Mapping[str, Any]) -> None:
    """Copy allocated clusterIP(s), nodePorts (by port name) and healthCheckNodePort the client omitted."""
    spec = new.setdefault("spec", {})
    old_spec = spec_of(old)
    if needs_cluster_ip(old) and needs_cluster_ip(new):
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if needs_node_port(old) and needs_node_port(new):
        old_used = {as_int(p.get("nodePort")) for p in ports_of(old)} - {0}
        new_used = {as_int(p.get("nodePort")) for p in ports_of(new)} - {0}
        unpatchable = old_used & new_used
        by_name = {p.get("name") or "": as_int(p.get("nodePort")) for p in ports_of(old)}
        for port in ports_of(new):
            if as_int(port.get("nodePort")) == 0:
                old_value = by_name.get(port.get("name") or "", 0)
                if old_value not in unpatchable:
                    _set_or_drop(port, "nodePort", old_value)
    if needs_health_check(old) and needs_health_check(new) and not as_int(spec.get("healthCheckNodePort")):
        _set_or_drop(spec, "healthCheckNodePort", as_int(old_spec.get("healthCheckNodePort")))


def prepare_for_create(svc: dict[str, Any]) -> None:
    """PrepareForCreate: clients cannot set status on create."""
    svc["status"] = {"loadBalancer": {}}


def prepare_for_update(new: dict[str, Any], old: Mapping[str, Any]) -> None:
    """PrepareForUpdate: status is kept from the stored object, then type-dependent fields are dropped."""
    new["status"] = copy.deepcopy(old.get("status") or {"loadBalancer": {}})
    drop_type_dependent_fields(new, old)


def drop_type_dependent_fields(new: dict[str, Any], old: Mapping[str, Any]) -> None:
    """On a type change, wipe fields the new type does not use, but only those the client left unchanged."""
    spec = new.setdefault("spec", {})
    old_spec = spec_of(old)
    if needs_cluster_ip(old) and not needs_cluster_ip(new):
        if _same_cluster_ips(old, new):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        if (old_spec.get("ipFamilies") or None) == (spec.get("ipFamilies") or None):
            spec.pop("ipFamilies", None)
        if (old_spec.get("ipFamilyPolicy") or "") == (spec.get("ipFamilyPolicy") or ""):
            spec.pop("ipFamilyPolicy", None)
    if needs_node_port(old) and not needs_node_port(new):
        old_ports = {as_int(p.get("nodePort")) for p in ports_of(old)} - {0}
        new_ports = {as_int(p.get("nodePort")) for p in ports_of(new)} - {0}
        if new_ports <= old_ports:
            for port in ports_of(new):
                port.pop("nodePort", None)
    if needs_health_check(old) and not needs_health_check(new) and \
            as_int(old_spec.get("healthCheckNodePort")) == as_int(spec.get("healthCheckNodePort")):
        spec.pop("healthCheckNodePort", None)
    if service_type(old) == LOAD_BALANCER and service_type(new) != LOAD_BALANCER:
        old_alloc, new_alloc = old_spec.get("allocateLoadBalancerNodePorts"), spec.get("allocateLoadBalancerNodePorts")
        if old_alloc is not None and new_alloc is not None and old_alloc == new_alloc:
            spec.pop("allocateLoadBalancerNodePorts", None)
        if old_spec.get("loadBalancerClass") == spec.get("loadBalancerClass"):
            spec.pop("loadBalancerClass", None)
    if needs_node_port(old) and not needs_node_port(new) and \
            (old_spec.get("externalTrafficPolicy") or "") == (spec.get("externalTrafficPolicy") or ""):
        spec.pop("externalTrafficPolicy", None)
    if service_type(new) != LOAD_BALANCER:
        status = new.setdefault("status", {})
        status["loadBalancer"] = {}


def _same_cluster_ips(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (spec_of(a).get("clusterIP") or "") == (spec_of(b).get("clusterIP") or "") and \
        cluster_ips(a) == cluster_ips(b)


# --- validation ----------------------------------------------------------------------------------------------

def _strings_value(spec: Mapping[str, Any], key: str) -> Any:
    """Bad-value rendering of a []string field: nil prints as []string(nil)."""
    value = spec.get(key)
    if value is None:
        return go_typed_strings("string", None)
    return list(value)


def _families_value(spec: Mapping[str, Any]) -> Any:
    return go_typed_strings("core.IPFamily", spec.get("ipFamilies"))


def _pointer_value(value: Any) -> Any:
    return GO_NIL if value is None else value


def validate_service(svc: Mapping[str, Any], *, service_cidr: str | None = None) -> list[FieldError]:
    """ValidateService (create), in Kubernetes' emission order.

    When service_cidr is given, the cluster IP-family checks that allocation normally runs first (IPv6 or
    dual-stack on this single-stack IPv4 cluster) are appended too, for callers validating without allocating.
    """
    spec = spec_of(svc)
    meta = svc.get("metadata") or {}
    errs = validate_object_meta(svc, True, validate_service_name)
    annotations = meta.get("annotations") or {}
    if ANNOTATION_TOPOLOGY_MODE in annotations and ANNOTATION_TOPOLOGY_HINTS in annotations and \
            annotations[ANNOTATION_TOPOLOGY_MODE] != annotations[ANNOTATION_TOPOLOGY_HINTS]:
        errs.append(invalid(f"metadata.annotations[{ANNOTATION_TOPOLOGY_MODE}]", annotations[ANNOTATION_TOPOLOGY_MODE],
                            f"must match annotations[{ANNOTATION_TOPOLOGY_HINTS}] when both are specified"))

    kind = spec.get("type") or ""
    headless = is_headless(svc)
    ports = ports_of(svc)
    if not ports and not headless and kind != EXTERNAL_NAME:
        errs.append(required("spec.ports"))
    if kind == LOAD_BALANCER and headless:
        errs.append(invalid("spec.clusterIPs[0]", CLUSTER_IP_NONE, "may not be set to 'None' for LoadBalancer services"))
    elif kind == NODE_PORT and headless:
        errs.append(invalid("spec.clusterIPs[0]", CLUSTER_IP_NONE, "may not be set to 'None' for NodePort services"))
    elif kind == EXTERNAL_NAME:
        if spec.get("clusterIPs"):
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = spec.get("externalName") or ""
        if cname.endswith("."):
            cname = cname[:-1]
        if cname:
            errs.extend(validate_dns1123_subdomain(cname, "spec.externalName"))
        else:
            errs.append(required("spec.externalName"))

    seen_names: set[str] = set()
    for i, port in enumerate(ports):
        errs.extend(_validate_service_port(port, len(ports) > 1, seen_names, f"spec.ports[{i}]"))

    if spec.get("selector") is not None:
        errs.extend(validate_labels(spec.get("selector"), "spec.selector"))

    affinity = spec.get("sessionAffinity") or ""
    if not affinity:
        errs.append(required("spec.sessionAffinity"))
    elif affinity not in SESSION_AFFINITIES:
        errs.append(not_supported("spec.sessionAffinity", affinity, list(SESSION_AFFINITIES)))
    if affinity == "ClientIP":
        errs.extend(_validate_client_ip_affinity(spec.get("sessionAffinityConfig")))
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        errs.append(forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"))

    errs.extend(validate_cluster_ips_related_fields(svc))

    for i, ip in enumerate(spec.get("externalIPs") or []):
        path = f"spec.externalIPs[{i}]"
        ip_errs = is_valid_ip(path, ip)
        errs.extend(ip_errs or validate_non_special_ip(ip, path))

    if not kind:
        errs.append(required("spec.type"))
    elif kind not in SERVICE_TYPES:
        errs.append(not_supported("spec.type", kind, list(SERVICE_TYPES)))

    if kind == CLUSTER_IP:
        for i, port in enumerate(ports):
            if as_int(port.get("nodePort")):
                errs.append(forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"))

    seen_node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        node_port = as_int(port.get("nodePort"))
        if not node_port:
            continue
        key = (port.get("protocol") or "", node_port)
        if key in seen_node_ports:
            errs.append(duplicate(f"spec.ports[{i}].nodePort", node_port))
        seen_node_ports.add(key)

    seen_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        key = (port.get("protocol") or "", as_int(port.get("port")))
        if key in seen_ports:
            errs.append(duplicate(f"spec.ports[{i}]", go_service_port_key(*key)))
        seen_ports.add(key)

    source_ranges = spec.get("loadBalancerSourceRanges") or []
    if source_ranges:
        if kind != LOAD_BALANCER:
            errs.append(forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"))
        for i, value in enumerate(source_ranges):
            errs.extend(is_valid_cidr(f"spec.LoadBalancerSourceRanges[{i}]", str(value).strip()))
    elif ANNOTATION_LB_SOURCE_RANGES in annotations:
        path = f"metadata.annotations[{ANNOTATION_LB_SOURCE_RANGES}]"
        if kind != LOAD_BALANCER:
            errs.append(forbidden(path, "may only be used when `type` is 'LoadBalancer'"))
        text = str(annotations[ANNOTATION_LB_SOURCE_RANGES]).strip()
        if text:
            for value in text.split(","):
                errs.extend(is_valid_cidr(path, value.strip()))

    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != LOAD_BALANCER:
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    if kind == LOAD_BALANCER and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(required("allocateLoadBalancerNodePorts"))  # sic: Kubernetes omits the spec. prefix here

    errs.extend(_validate_load_balancer_class(None, svc))
    errs.extend(_validate_external_traffic_policy(svc))
    errs.extend(_validate_internal_traffic_policy(svc))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        errs.append(not_supported("spec.trafficDistribution", distribution, ["PreferClose"]))
    if service_cidr is not None:
        errs.extend(cluster_family_errors(svc, ("IPv6",) if ":" in service_cidr else ("IPv4",)))
    return errs


def _validate_service_port(port: Mapping[str, Any], require_name: bool, seen: set[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = port.get("name") or ""
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs.extend(validate_dns1123_label(name, f"{path}.name"))
        if name in seen:
            errs.append(duplicate(f"{path}.name", name))
        else:
            seen.add(name)
    number = as_int(port.get("port"))
    errs.extend(invalid(f"{path}.port", number, msg) for msg in is_valid_port_num(number))
    protocol = port.get("protocol") or ""
    if not protocol:
        errs.append(required(f"{path}.protocol"))
    elif protocol not in PROTOCOLS:
        errs.append(not_supported(f"{path}.protocol", protocol, list(PROTOCOLS)))
    target = port.get("targetPort")
    if isinstance(target, str):
        errs.extend(invalid(f"{path}.targetPort", target, msg) for msg in is_valid_port_name(target))
    else:
        value = as_int(target)
        errs.extend(invalid(f"{path}.targetPort", value, msg) for msg in is_valid_port_num(value))
    if port.get("appProtocol") is not None:
        errs.extend(validate_qualified_name(str(port["appProtocol"]), f"{path}.appProtocol"))
    return errs


def _validate_client_ip_affinity(config: Any) -> list[FieldError]:
    why = "when session affinity type is ClientIP"
    path = "spec.sessionAffinityConfig"
    if not isinstance(config, dict):
        return [required(path, why)]
    client_ip = config.get("clientIP")
    if not isinstance(client_ip, dict):
        return [required(f"{path}.clientIP", why)]
    timeout = client_ip.get("timeoutSeconds")
    if timeout is None:
        return [required(f"{path}.clientIP.timeoutSeconds", why)]
    value = as_int(timeout)
    if value <= 0 or value > MAX_CLIENT_IP_TIMEOUT:
        return [invalid(f"{path}.clientIP.timeoutSeconds", value,
                        f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}")]
    return []


def _validate_load_balancer_class(old: Mapping[str, Any] | None, svc: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    lb_class = spec_of(svc).get("loadBalancerClass")
    if old is not None and service_type(old) == LOAD_BALANCER and service_type(svc) == LOAD_BALANCER:
        if spec_of(old).get("loadBalancerClass") != lb_class:
            errs.append(invalid("spec.loadBalancerClass", _pointer_value(lb_class), "may not change once set"))
    if service_type(svc) == LOAD_BALANCER:
        if lb_class is not None:
            errs.extend(validate_qualified_name(str(lb_class), "spec.loadBalancerClass"))
    elif lb_class is not None:
        errs.append(forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"))
    return errs


def _validate_external_traffic_policy(svc: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = spec_of(svc)
    policy = spec.get("externalTrafficPolicy") or ""
    if not externally_accessible(svc):
        if policy:
            errs.append(invalid("spec.externalTrafficPolicy", policy,
                                "may only be set for externally-accessible services"))
    elif not policy:
        errs.append(required("spec.externalTrafficPolicy"))
    elif policy not in TRAFFIC_POLICIES:
        errs.append(not_supported("spec.externalTrafficPolicy", policy, list(TRAFFIC_POLICIES)))
    hc_port = as_int(spec.get("healthCheckNodePort"))
    if not needs_health_check(svc):
        if hc_port:
            errs.append(invalid("spec.healthCheckNodePort", hc_port,
                                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    elif not hc_port:
        errs.append(required("spec.healthCheckNodePort"))
    else:
        errs.extend(invalid("spec.healthCheckNodePort", hc_port, msg) for msg in is_valid_port_num(hc_port))
    return errs


def _validate_internal_traffic_policy(svc: Mapping[str, Any]) -> list[FieldError]:
    policy = spec_of(svc).get("internalTrafficPolicy")
    if policy is None:
        if service_type(svc) in (NODE_PORT, LOAD_BALANCER, CLUSTER_IP):
            return [required("spec.internalTrafficPolicy")]
        return []
    if policy not in TRAFFIC_POLICIES:
        return [not_supported("spec.internalTrafficPolicy", policy, list(TRAFFIC_POLICIES))]
    return []


def validate_cluster_ips_related_fields(svc: Mapping[str, Any]) -> list[FieldError]:
    """ValidateServiceClusterIPsRelatedFields: clusterIP/clusterIPs/ipFamilies/ipFamilyPolicy consistency."""
    if service_type(svc) == EXTERNAL_NAME:
        return []
    spec = spec_of(svc)
    errs: list[FieldError] = []
    primary = spec.get("clusterIP") or ""
    ips = cluster_ips(svc)
    if primary:
        if not ips:
            errs.append(required("spec.clusterIPs"))
        elif ips[0] != primary:
            errs.append(invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    elif ips:
        errs.append(invalid("spec.clusterIPs", ips, "must be empty when `clusterIP` is not specified"))

    seen: set[str] = set()
    for i, family in enumerate(ip_families(svc)):
        if family not in IP_FAMILIES:
            errs.append(not_supported(f"spec.ipFamilies[{i}]", family, list(IP_FAMILIES)))
        if family in seen:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        errs.append(not_supported("spec.ipFamilyPolicy", policy, list(IP_FAMILY_POLICIES)))

    has_invalid = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == CLUSTER_IP_NONE:
            if len(ips) > 1:
                has_invalid = True
                errs.append(invalid("spec.clusterIPs", ips, "'None' must be the first and only value"))
            continue
        ip_errs = is_valid_ip(f"spec.clusterIPs[{i}]", ip)
        has_invalid = has_invalid or bool(ip_errs)
        errs.extend(ip_errs)
    if len(ips) > 2:
        errs.append(invalid("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if has_invalid:
        return errs
    if len(ips) > 1:
        kinds = {type(parse_ip_sloppy(ip)) for ip in ips}
        if len(kinds) < 2:
            errs.append(invalid("spec.clusterIPs", ips, "may specify no more than one IP for each IP family"))
    families = ip_families(svc)
    if not is_headless(svc) and ips and families:
        for i, ip in enumerate(ips[:len(families)]):
            v6 = isinstance(parse_ip_sloppy(ip), _IPv6)
            if families[i] == "IPv4" and v6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"))
            if families[i] == "IPv6" and not v6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"))
    return errs


def cluster_family_errors(svc: Mapping[str, Any], configured: tuple[str, ...] = ("IPv4",)) -> list[FieldError]:
    """The cluster-configuration checks of initIPFamilyFields, without mutating (used for dry validation)."""
    if service_type(svc) == EXTERNAL_NAME:
        return []
    spec = spec_of(svc)
    if spec.get("clusterIP") == CLUSTER_IP_NONE and not spec.get("selector"):
        return []
    errs: list[FieldError] = []
    ips = cluster_ips(svc)
    families = ip_families(svc)
    for i, ip in enumerate(ips):
        if ip == CLUSTER_IP_NONE:
            break
        family = "IPv6" if isinstance(parse_ip_sloppy(ip), _IPv6) else "IPv4"
        if i >= len(families) and family not in configured:
            errs.append(invalid(f"spec.clusterIPs[{i}]", ips, f"{family} is not configured on this cluster"))
    if spec.get("ipFamilyPolicy") == REQUIRE_DUAL_STACK and len(configured) < 2:
        errs.append(invalid("spec.ipFamilyPolicy", REQUIRE_DUAL_STACK, "this cluster is not configured for dual-stack services"))
    for i, family in enumerate(families):
        if family not in configured:
            errs.append(invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster"))
    return errs


def validate_service_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldError]:
    """ValidateServiceUpdate: update-only rules first, then the full create validation of `new`."""
    errs = validate_object_meta_update(new, old)
    errs.extend(_validate_upgrade_downgrade_cluster_ips(old, new))
    errs.extend(_validate_upgrade_downgrade_ip_families(old, new))
    errs.extend(_validate_load_balancer_class(old, new))
    if needs_health_check(old) and needs_health_check(new) and \
            as_int(spec_of(new).get("healthCheckNodePort")) != as_int(spec_of(old).get("healthCheckNodePort")):
        errs.append(forbidden("spec.healthCheckNodePort", "field is immutable"))
    errs.extend(validate_service(new))
    return errs


def _validate_upgrade_downgrade_cluster_ips(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldError]:
    if EXTERNAL_NAME in (service_type(old), service_type(new)):
        return []
    if is_headless(old) and is_headless(new):
        return []
    errs: list[FieldError] = []
    old_ips, new_ips = cluster_ips(old), cluster_ips(new)
    value = _strings_value(spec_of(new), "clusterIPs")
    if len(old_ips) == len(new_ips):
        for i, ip in enumerate(old_ips):
            if ip != new_ips[i]:
                errs.append(invalid(f"spec.clusterIPs[{i}]", value, "may not change once set"))
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            errs.append(invalid("spec.clusterIPs[0]", value, "primary clusterIP can not be unset"))
        if old_ips and new_ips and new_ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", value, "may not change once set"))
        policy = spec_of(new).get("ipFamilyPolicy")
        if len(new_ips) == 1 and policy != SINGLE_STACK:
            errs.append(invalid("spec.ipFamilyPolicy", _pointer_value(policy),
                                "must be set to 'SingleStack' when releasing the secondary clusterIP"))
    elif old_ips and new_ips[0] != old_ips[0]:
        errs.append(invalid("spec.clusterIPs[0]", value, "may not change once set"))
    return errs


def _validate_upgrade_downgrade_ip_families(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldError]:
    if EXTERNAL_NAME in (service_type(old), service_type(new)):
        return []
    if is_headless(old) != is_headless(new) or is_headless(new):
        return []
    errs: list[FieldError] = []
    old_fams, new_fams = ip_families(old), ip_families(new)
    ips_value = _strings_value(spec_of(new), "clusterIPs")
    if len(old_fams) == len(new_fams):
        for i, family in enumerate(old_fams):
            if family != new_fams[i]:
                errs.append(invalid("spec.ipFamilies[0]", _families_value(spec_of(new)), "may not change once set"))
    elif len(old_fams) > len(new_fams):
        if not cluster_ips(new):
            errs.append(invalid("spec.ipFamilies[0]", _families_value(spec_of(new)), "primary ipFamily can not be unset"))
        if new_fams and new_fams[0] != old_fams[0]:
            errs.append(invalid("spec.ipFamilies[0]", ips_value, "may not change once set"))
        policy = spec_of(new).get("ipFamilyPolicy")
        if len(new_fams) == 1 and policy != SINGLE_STACK:
            errs.append(invalid("spec.ipFamilyPolicy", _pointer_value(policy),
                                "must be set to 'SingleStack' when releasing the secondary ipFamily"))
    elif old_fams and new_fams and new_fams[0] != old_fams[0]:
        errs.append(invalid("spec.ipFamilies[0]", ips_value, "may not change once set"))
    return errs

