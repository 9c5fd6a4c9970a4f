"""EndpointSlice mirroring: user-written Endpoints of selector-less Services become EndpointSlices.

pkg/controller/endpointslicemirroring: only Services without a selector, Endpoints without the
`endpointslice.kubernetes.io/skip-mirror: "true"` label and not written by the Endpoints controller;
at most 1000 addresses; slices owned by the Endpoints object.
"""

from __future__ import annotations

import ipaddress

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.client import object_key
from nanokube.controllers.endpoints_desired import MANAGED_BY_LABEL
from nanokube.controllers.endpointslice_controller import SliceIndex
from nanokube.controllers.endpointslice_reconciler import (
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    generate_name,
    port_map_key,
)
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES
from nanokube.controllers.serviceindex import service_selector

CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
MAX_MIRRORED = 1000
_SKIPPED_ANNOTATIONS = ("endpoints.kubernetes.io/last-change-trigger-time",
                        "kubectl.kubernetes.io/last-applied-configuration",
                        "control-plane.alpha.kubernetes.io/leader")


def should_mirror(endpoints: Obj | None, service: Obj | None) -> bool:
    if endpoints is None or service is None or service_selector(service) is not None:
        return False
    if service.get("spec", {}).get("type") == "ExternalName":
        return False
    md = endpoints.get("metadata", {})
    if md.get("namespace") == "default" and md.get("name") == "kubernetes":
        return False  # the apiserver publishes its own slice (Kubernetes marks this Endpoints skip-mirror)
    labels = md.get("labels") or {}
    if labels.get(SKIP_MIRROR) == "true" or labels.get(MANAGED_BY_LABEL):
        return False
    return "control-plane.alpha.kubernetes.io/leader" not in (md.get("annotations") or {})


def _endpoint(address: Obj, ready: bool) -> tuple[str, Obj] | None:
    try:
        ip = ipaddress.ip_address(address.get("ip", ""))
    except ValueError:
        return None
    endpoint: Obj = {"addresses": [str(ip)], "conditions": {"ready": ready}}
    if address.get("targetRef"):
        endpoint["targetRef"] = address["targetRef"]
    if address.get("nodeName"):
        endpoint["nodeName"] = address["nodeName"]
    if address.get("hostname"):
        endpoint["hostname"] = address["hostname"]
    return ("IPv6" if ip.version == 6 else "IPv4"), endpoint


def desired_mirror(endpoints: Obj, max_per_slice: int) -> list[tuple[str, list[Obj], list[Obj]]]:
    """(addressType, ports, endpoints) per slice to exist, in a stable order."""
    groups: dict[tuple[str, bytes], tuple[list[Obj], dict[str, Obj]]] = {}
    total = 0
    for subset in endpoints.get("subsets") or []:
        ports = [{"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP",
                  **({"appProtocol": p["appProtocol"]} if p.get("appProtocol") else {})}
                 for p in subset.get("ports") or []]
        pkey = port_map_key(ports)
        for addresses, ready in ((subset.get("addresses"), True), (subset.get("notReadyAddresses"), False)):
            for address in addresses or []:
                if total >= MAX_MIRRORED:
                    break
                made = _endpoint(address, ready)
                if made is None:
                    continue
                address_type, endpoint = made
                group = groups.setdefault((address_type, pkey), (ports, {}))
                if endpoint["addresses"][0] not in group[1]:
                    group[1][endpoint["addresses"][0]] = endpoint
                    total += 1
    out = []
    for (address_type, _), (ports, eps) in sorted(groups.items()):
        items = [eps[ip] for ip in sorted(eps)]
        for i in range(0, len(items), max_per_slice):
            out.append((address_type, ports, items[i:i + max_per_slice]))
    return out


def mirror_metadata(endpoints: Obj) -> Obj:
    md = endpoints.get("metadata", {})
    labels = dict(md.get("labels") or {})
    labels[LABEL_SERVICE_NAME] = md.get("name", "")
    labels[LABEL_MANAGED_BY] = CONTROLLER_NAME
    annotations = {k: v for k, v in (md.get("annotations") or {}).items() if k not in _SKIPPED_ANNOTATIONS}
    meta: Obj = {"namespace": md.get("namespace"), "labels": labels,
                 "ownerReferences": [{"apiVersion": "v1", "kind": "Endpoints", "name": md.get("name"),
                                      "uid": md.get("uid"), "controller": True, "blockOwnerDeletion": True}]}
    if annotations:
        meta["annotations"] = annotations
    return meta


class MirroringController(Controller):
    name = "endpointslicemirroring-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.services = ctx.informer(SERVICES)
        self.endpoints = ctx.informer(ENDPOINTS)
        self.slices = SliceIndex(ctx, CONTROLLER_NAME, self.queue.add)
        for informer in (self.services, self.endpoints):
            informer.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n),
                                 on_delete=self._changed)

    def _changed(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    async def start(self) -> None:
        for ep in self.endpoints.list():
            self.queue.add(object_key(ep))

    async def sync(self, key: str) -> float | None:
        namespace = key.split("/", 1)[0]
        endpoints = self.endpoints.cache.get(key)
        existing = sorted(self.slices.slices_of(key), key=lambda s: s["metadata"]["name"])
        wanted = []
        if should_mirror(endpoints, self.services.cache.get(key)):
            wanted = desired_mirror(endpoints, self.ctx.settings.max_endpoints_per_slice)  # type: ignore[arg-type]
        for i, (address_type, ports, eps) in enumerate(wanted):
            meta = mirror_metadata(endpoints)  # type: ignore[arg-type]
            body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
                    "addressType": address_type, "endpoints": eps, "ports": ports or None}
            if i < len(existing) and existing[i].get("addressType") != address_type:
                await self._delete(existing[i])  # addressType is immutable
                existing[i] = {}
            if i < len(existing) and existing[i]:
                current = existing[i]
                if _same(current, body):
                    continue
                body["metadata"] = {**current["metadata"], **meta}
                self.slices.wrote(await self.client.update(ENDPOINTSLICES, body))
            else:
                body["metadata"]["generateName"] = generate_name(key.split("/", 1)[1])
                self.slices.wrote(await self.client.create(ENDPOINTSLICES, body, namespace))
        for doomed in existing[len(wanted):]:
            await self._delete(doomed)
        return None

    async def _delete(self, slice_: Obj) -> None:
        try:
            await self.client.delete(ENDPOINTSLICES, slice_["metadata"]["name"], slice_["metadata"]["namespace"])
        except ApiError as err:
            if err.code != 404:
                raise
        self.slices.overlay.deleted(slice_)


def _same(current: Obj, body: Obj) -> bool:
    cmd, bmd = current.get("metadata", {}), body["metadata"]
    return (current.get("addressType") == body["addressType"]
            and (current.get("endpoints") or []) == body["endpoints"]
            and port_map_key(current.get("ports")) == port_map_key(body["ports"])
            and (cmd.get("labels") or {}) == bmd["labels"]
            and (cmd.get("annotations") or {}) == bmd.get("annotations", {})
            and cmd.get("ownerReferences") == bmd["ownerReferences"])
