"""Per-namespace identity objects, as kube-controller-manager's serviceaccount-controller and
root-ca-cert-publisher keep them: a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap (the cluster
CA that in-cluster clients verify the API server with) in every active namespace, recreated when deleted and
put back when changed."""

from __future__ import annotations

from typing import Any

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import NAMESPACES

SERVICE_ACCOUNTS = by_kind("", "ServiceAccount")
CONFIG_MAPS = by_kind("", "ConfigMap")
DEFAULT_SA = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


class ServiceAccountsController(Controller):
    name = "serviceaccount-controller"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.namespaces = ctx.informer(NAMESPACES)
        self.accounts = ctx.informer(SERVICE_ACCOUNTS)
        self.config_maps = ctx.informer(CONFIG_MAPS)
        self.namespaces.add_handler(on_add=self._namespace, on_update=lambda _o, n: self._namespace(n))
        self.accounts.add_handler(on_delete=lambda sa: self._owned(sa, DEFAULT_SA))
        self.config_maps.add_handler(on_update=lambda _o, cm: self._owned(cm, ROOT_CA_CONFIGMAP),
                                     on_delete=lambda cm: self._owned(cm, ROOT_CA_CONFIGMAP))
        ca_file = ctx.settings.data_dir / "pki" / "ca.crt"
        self.ca_pem = ca_file.read_text() if ca_file.exists() else ""

    def _namespace(self, ns: Obj) -> None:
        self.queue.add(ns["metadata"]["name"])

    def _owned(self, obj: Obj, name: str) -> None:
        md = obj.get("metadata") or {}
        if md.get("name") == name and md.get("namespace"):
            self.queue.add(md["namespace"])

    async def sync(self, namespace: str) -> float | None:
        ns = self.namespaces.get(None, namespace)
        if ns is None or ns["metadata"].get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase") == "Terminating":
            return None
        if self.accounts.get(namespace, DEFAULT_SA) is None:
            await self._create(SERVICE_ACCOUNTS, namespace, {"metadata": {"name": DEFAULT_SA}})
        if self.ca_pem:
            await self._publish_ca(namespace)
        return None

    async def _publish_ca(self, namespace: str) -> None:
        wanted = {"ca.crt": self.ca_pem}
        current = self.config_maps.get(namespace, ROOT_CA_CONFIGMAP)
        if current is None:
            await self._create(CONFIG_MAPS, namespace, {
                "metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {"kubernetes.io/description": DESCRIPTION}},
                "data": wanted})
        elif current.get("data") != wanted or current.get("binaryData"):
            body = {**current, "data": wanted}
            body.pop("binaryData", None)
            await self.client.update(CONFIG_MAPS, body)

    async def _create(self, resource: Any, namespace: str, body: Obj) -> None:
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
        body["metadata"]["namespace"] = namespace
        try:
            await self.client.create(resource, body, namespace)
        except ApiError as err:
            if err.code not in (409, 403):  # already there / namespace going away
                raise
