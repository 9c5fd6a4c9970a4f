"""A container's environment, built the way kubelet builds it.

Order of precedence (low to high): the image's env, the Service variables, envFrom, env. ``$(VAR)`` in
env values expands against the variables declared so far and the Service variables. Errors name the
missing Secret/ConfigMap or key, never a value.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal

from nanokube.agent.expand import expand, lookup_in
from nanokube.api.meta import Obj
from nanokube.api.quantity import ceil_div, parse_quantity

Getter = Callable[[str, str], Awaitable[Obj | None]]  # (namespace, name) -> object or None when not found

MASTER_SERVICES = ("kubernetes",)


class ContainerConfigError(Exception):
    """The container cannot be configured yet (waiting reason CreateContainerConfigError)."""


def _env_prefix(name: str) -> str:
    return name.upper().replace("-", "_")


def _is_service_ip_set(svc: Obj) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def _service_vars(svc: Obj) -> dict[str, str]:
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    if not ports:
        return {}
    prefix = _env_prefix(svc["metadata"]["name"])
    ip = spec["clusterIP"]
    url_ip = f"[{ip}]" if ":" in ip else ip
    first = ports[0]
    out = {
        f"{prefix}_SERVICE_HOST": ip,
        f"{prefix}_SERVICE_PORT": str(first["port"]),
    }
    for port in ports:
        if port.get("name"):
            out[f"{prefix}_SERVICE_PORT_{_env_prefix(port['name'])}"] = str(port["port"])
    first_proto = (first.get("protocol") or "TCP").lower()
    out[f"{prefix}_PORT"] = f"{first_proto}://{url_ip}:{first['port']}"
    for port in ports:
        proto = port.get("protocol") or "TCP"
        base = f"{prefix}_PORT_{port['port']}_{proto.upper()}"
        out[base] = f"{proto.lower()}://{url_ip}:{port['port']}"
        out[f"{base}_PROTO"] = proto.lower()
        out[f"{base}_PORT"] = str(port["port"])
        out[f"{base}_ADDR"] = ip
    return out


def service_env(services: Iterable[Obj], namespace: str, enable_service_links: bool = True) -> dict[str, str]:
    """The Service variables a pod in ``namespace`` sees (kubelet getServiceEnvVarMap)."""
    chosen: dict[str, Obj] = {}
    for svc in services:
        if not _is_service_ip_set(svc):
            continue
        meta = svc["metadata"]
        name, ns = meta["name"], meta.get("namespace")
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for svc in chosen.values():
        env.update(_service_vars(svc))
    return env


def _label_value(mapping: Mapping[str, str], path: str, prefix: str) -> str | None:
    """metadata.labels['key'] -> the value ('' when absent), None when the path is not of that shape."""
    if not path.startswith(prefix + "[") or not path.endswith("]"):
        return None
    key = path[len(prefix) + 1:-1].strip("'\"")
    return mapping.get(key, "")


def format_map(mapping: Mapping[str, str]) -> str:
    """Downward API rendering of all labels/annotations: sorted key="value" lines."""
    return "\n".join(f'{k}="{v}"' for k, v in sorted(mapping.items()))


def field_value(pod: Obj, path: str, *, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "spec.terminationGracePeriodSeconds": str(spec.get("terminationGracePeriodSeconds", 30)),
    }
    if path in simple:
        return simple[path]
    if path == "metadata.labels":
        return format_map(meta.get("labels") or {})
    if path == "metadata.annotations":
        return format_map(meta.get("annotations") or {})
    for prefix, mapping in (("metadata.labels", meta.get("labels") or {}),
                            ("metadata.annotations", meta.get("annotations") or {})):
        value = _label_value(mapping, path, prefix)
        if value is not None:
            return value
    raise ContainerConfigError(f"unsupported fieldPath: {path}")


def resource_value(pod: Obj, container: Obj, ref: Obj, node_allocatable: Mapping[str, str]) -> str:
    """resourceFieldRef: limits default to the node's allocatable, requests to 0 (cpu rounds up to the divisor)."""
    name = ref.get("containerName")
    if name:
        found = [c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == name]
        if not found:
            raise ContainerConfigError(f"container {name} not found")
        container = found[0]
    resource = ref.get("resource", "")
    kind, _, res = resource.partition(".")
    res_spec = container.get("resources") or {}
    value = (res_spec.get(kind) or {}).get(res)
    if value is None:
        if kind == "limits":
            value = node_allocatable.get(res, "0")
        elif kind == "requests":
            value = (res_spec.get("limits") or {}).get(res, "0")
        else:
            raise ContainerConfigError(f"unsupported container resource: {resource}")
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    if divisor == 0:
        divisor = Decimal(1)
    return str(ceil_div(parse_quantity(str(value)), divisor))


def _decode_secret(secret: Obj) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


async def build_env(pod: Obj, container: Obj, *, services_env: Mapping[str, str], get_secret: Getter,
                    get_configmap: Getter, pod_ip: str, host_ip: str,
                    node_allocatable: Mapping[str, str] | None = None) -> dict[str, str]:
    """The container-declared part of the environment merged over the Service variables."""
    namespace = pod["metadata"].get("namespace", "default")
    secrets: dict[str, dict[str, str] | None] = {}
    configmaps: dict[str, dict[str, str] | None] = {}

    async def secret(name: str) -> dict[str, str] | None:
        if name not in secrets:
            obj = await get_secret(namespace, name)
            secrets[name] = None if obj is None else _decode_secret(obj)
        return secrets[name]

    async def configmap(name: str) -> dict[str, str] | None:
        if name not in configmaps:
            obj = await get_configmap(namespace, name)
            configmaps[name] = None if obj is None else dict(obj.get("data") or {})
        return configmaps[name]

    async def referenced(ref: Obj, fetch: Callable[[str], Awaitable[dict[str, str] | None]],
                         what: str) -> dict[str, str] | None:
        """The data a configMap / secret reference names; None when an optional one does not exist."""
        data = await fetch(ref.get("name", ""))
        if data is None and not ref.get("optional"):
            raise ContainerConfigError(f'{what} "{ref.get("name", "")}" not found')
        return data

    async def key_value(ref: Obj, fetch: Callable[[str], Awaitable[dict[str, str] | None]], what: str,
                        kind: str) -> str | None:
        """A configMapKeyRef / secretKeyRef value; None when an optional one does not resolve."""
        data = await referenced(ref, fetch, what)
        if data is None:
            return None
        if ref.get("key") not in data:
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f"couldn't find key {ref.get('key')} in {kind} {namespace}/{ref.get('name')}")
        return data[ref["key"]]

    declared: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        if "configMapRef" in source:
            data = await referenced(source["configMapRef"], configmap, "configmap")
        elif "secretRef" in source:
            data = await referenced(source["secretRef"], secret, "secret")
        else:
            continue
        for key, value in (data or {}).items():
            declared[prefix + key] = value

    lookup = lookup_in(declared, services_env)
    for var in container.get("env") or []:
        name = var["name"]
        value = var.get("value")
        source = var.get("valueFrom")
        if value:
            declared[name] = expand(value, lookup)
            continue
        if not source:
            declared[name] = ""
            continue
        if "fieldRef" in source:
            declared[name] = field_value(pod, source["fieldRef"].get("fieldPath", ""), pod_ip=pod_ip,
                                         host_ip=host_ip)
        elif "resourceFieldRef" in source:
            declared[name] = resource_value(pod, container, source["resourceFieldRef"], node_allocatable or {})
        elif "configMapKeyRef" in source:
            found = await key_value(source["configMapKeyRef"], configmap, "configmap", "ConfigMap")
            if found is not None:
                declared[name] = found
        elif "secretKeyRef" in source:
            found = await key_value(source["secretKeyRef"], secret, "secret", "Secret")
            if found is not None:
                declared[name] = found

    merged = dict(services_env)
    merged.update(declared)
    return merged


def expand_command(argv: list[str], env: Mapping[str, str]) -> list[str]:
    lookup = lookup_in(env)
    return [expand(a, lookup) for a in argv]
