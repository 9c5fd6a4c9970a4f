"""local-path provisioner: a PVC of class `local-path` (or of no class while local-path is the default, or of any
class whose provisioner is nanokube.io/local-path) gets a PV `pvc-<uid>` backed by the directory
<data_dir>/storage/pvc-<uid>_<ns>_<name>, and both are bound.
When the claim goes away the reclaim policy decides: Delete removes PV and directory, Retain keeps them.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import shutil
from pathlib import Path

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.client import object_key
from nanokube.controllers.framework import Context, Controller
from nanokube.controllers.resources import PODS, PVCS, PVS, STORAGECLASSES

log = logging.getLogger(__name__)

CLASS_NAME = "local-path"
PROVISIONER = "nanokube.io/local-path"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"


def storage_class_body() -> Obj:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS: "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}


def volume_dir(data_dir: Path, pvc: Obj) -> Path:
    md = pvc["metadata"]
    return data_dir / "storage" / f"pvc-{md['uid']}_{md['namespace']}_{md['name']}"


def claim_class(pvc: Obj, classes: dict[str, Obj]) -> str | None:
    """The StorageClass a claim asks for; a claim without the field gets the default class."""
    spec = pvc.get("spec", {})
    if "storageClassName" in spec and spec["storageClassName"] is not None:
        return spec["storageClassName"] or None
    for sc in classes.values():
        if (sc.get("metadata", {}).get("annotations") or {}).get(DEFAULT_CLASS) == "true":
            return sc["metadata"]["name"]
    return None


def pv_for(pvc: Obj, path: Path, reclaim: str, class_name: str = CLASS_NAME) -> Obj:
    md, spec = pvc["metadata"], pvc.get("spec", {})
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{md['uid']}", "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": md["namespace"],
                         "name": md["name"], "uid": md["uid"]},
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": class_name,
            "volumeMode": spec.get("volumeMode") or "Filesystem",
        },
    }


class LocalPathProvisioner(Controller):
    name = "local-path-provisioner"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.root = Path(ctx.settings.data_dir)
        self.pvcs = ctx.informer(PVCS)
        self.pvs = ctx.informer(PVS)
        self.classes = ctx.informer(STORAGECLASSES)
        self.pods = ctx.informer(PODS)
        self.pvcs.add_handler(on_add=self._pvc, on_update=lambda _o, n: self._pvc(n), on_delete=self._pvc_gone)
        self.pvs.add_handler(on_add=self._pv, on_update=lambda _o, n: self._pv(n))
        self.pods.add_handler(on_delete=self._pod_gone)

    def _pvc(self, pvc: Obj) -> None:
        self.queue.add(("pvc", object_key(pvc)))

    def _pvc_gone(self, pvc: Obj) -> None:
        self.queue.add(("pv", f"pvc-{pvc['metadata']['uid']}"))
        volume = pvc.get("spec", {}).get("volumeName")
        if volume:
            self.queue.add(("pv", volume))

    def _pv(self, pv: Obj) -> None:
        self.queue.add(("pv", pv["metadata"]["name"]))

    def _pod_gone(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        for vol in pod.get("spec", {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                self.queue.add(("pvc", f"{ns}/{claim}"))

    async def start(self) -> None:
        if CLASS_NAME not in self.classes.cache:
            try:
                await self.client.create(STORAGECLASSES, storage_class_body())
            except ApiError as err:
                if err.code != 409:
                    raise
        for pvc in self.pvcs.list():
            self._pvc(pvc)
        for pv in self.pvs.list():
            self._pv(pv)

    async def sync(self, item: tuple[str, str]) -> float | None:
        kind, key = item
        if kind == "pvc":
            return await self._sync_claim(key)
        return await self._sync_volume(key)

    # -- claims ----------------------------------------------------------------------------------------
    def _in_use(self, pvc: Obj) -> bool:
        md = pvc["metadata"]
        for pod in self.pods.cache.values():
            if pod["metadata"].get("namespace") != md["namespace"] or \
                    pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for vol in pod.get("spec", {}).get("volumes") or []:
                if (vol.get("persistentVolumeClaim") or {}).get("claimName") == md["name"]:
                    return True
        return False

    async def _sync_claim(self, key: str) -> float | None:
        pvc = self.pvcs.cache.get(key)
        if pvc is None:
            return None
        md = pvc["metadata"]
        if md.get("deletionTimestamp"):
            if PVC_PROTECTION in (md.get("finalizers") or []) and not self._in_use(pvc):
                body = copy.deepcopy(pvc)
                body["metadata"]["finalizers"] = [f for f in md["finalizers"] if f != PVC_PROTECTION]
                await self.client.update(PVCS, body)
            return None
        class_name = claim_class(pvc, self.classes.cache)
        sc = self.classes.cache.get(class_name or "") or (storage_class_body() if class_name == CLASS_NAME else None)
        if sc is None or sc.get("provisioner") != PROVISIONER:  # any class of our provisioner, e.g. a Retain one
            return None
        spec = pvc.get("spec", {})
        volume_name = spec.get("volumeName") or f"pvc-{md['uid']}"
        if spec.get("volumeName") and spec["volumeName"] != volume_name:
            return None
        pv = self.pvs.cache.get(volume_name)
        if pv is None:
            path = volume_dir(self.root, pvc)
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
            try:
                pv = await self.client.create(PVS, pv_for(pvc, path, sc.get("reclaimPolicy") or "Delete",
                                                          sc["metadata"]["name"]))
            except ApiError as err:
                if err.code != 409:
                    raise
                pv = await self.client.get(PVS, volume_name)
        if (pv.get("status") or {}).get("phase") != "Bound":
            body = copy.deepcopy(pv)
            body["status"] = {**(pv.get("status") or {}), "phase": "Bound"}
            await self.client.update(PVS, body, subresource="status")
        if spec.get("volumeName") != volume_name or "storageClassName" not in spec:
            body = copy.deepcopy(pvc)
            body["spec"]["volumeName"] = volume_name
            body["spec"].setdefault("storageClassName", sc["metadata"]["name"])
            ann = body["metadata"].setdefault("annotations", {})
            ann.update({"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                        "volume.kubernetes.io/storage-provisioner": PROVISIONER,
                        "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER})
            pvc = await self.client.update(PVCS, body)
        status = {"phase": "Bound", "accessModes": pv["spec"].get("accessModes"),
                  "capacity": pv["spec"].get("capacity")}
        if any((pvc.get("status") or {}).get(k) != v for k, v in status.items()):
            body = copy.deepcopy(pvc)
            body["status"] = {**(pvc.get("status") or {}), **status}
            await self.client.update(PVCS, body, subresource="status")
        return None

    # -- volumes ---------------------------------------------------------------------------------------
    async def _sync_volume(self, name: str) -> float | None:
        pv = self.pvs.cache.get(name)
        if pv is None or (pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY) != PROVISIONER:
            return None
        if pv["metadata"].get("deletionTimestamp"):
            if PV_PROTECTION in (pv["metadata"].get("finalizers") or []):
                body = copy.deepcopy(pv)
                body["metadata"]["finalizers"] = [f for f in body["metadata"]["finalizers"] if f != PV_PROTECTION]
                await self.client.update(PVS, body)
            return None
        ref = pv.get("spec", {}).get("claimRef") or {}
        claim = self.pvcs.cache.get(f"{ref.get('namespace')}/{ref.get('name')}")
        if claim is not None and claim["metadata"]["uid"] == ref.get("uid"):
            return None
        try:  # the cache may lag: ask the API before letting go of data
            live = await self.client.get(PVCS, ref.get("name", ""), ref.get("namespace"))
            if live["metadata"]["uid"] == ref.get("uid"):
                return None
        except ApiError as err:
            if err.code != 404:
                raise
        if pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
            await asyncio.to_thread(self._remove_dir, pv)
            try:
                await self.client.delete(PVS, name)
            except ApiError as err:
                if err.code != 404:
                    raise
        elif (pv.get("status") or {}).get("phase") != "Released":
            body = copy.deepcopy(pv)
            body["status"] = {**(pv.get("status") or {}), "phase": "Released"}
            await self.client.update(PVS, body, subresource="status")
        return None

    def _remove_dir(self, pv: Obj) -> None:
        path = Path((pv.get("spec", {}).get("hostPath") or {}).get("path", ""))
        storage = (self.root / "storage").resolve()
        try:
            resolved = path.resolve()
        except OSError:
            return
        if resolved.parent == storage and resolved.name.startswith("pvc-"):  # never outside our storage dir
            shutil.rmtree(resolved, ignore_errors=True)
