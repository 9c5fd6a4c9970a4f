"""PersistentVolumes, PersistentVolumeClaims and StorageClasses."""

from __future__ import annotations

from datetime import datetime

from nanokube.apiserver.printing.base import (
    Cell,
    Column,
    Obj,
    Printer,
    access_modes,
    age_column,
    age_of,
    doc,
    is_deleting,
    metadata,
    name_column,
    name_of,
    spec,
    status,
    wide,
)
from nanokube.apiserver.printing.quantity import canonical_quantity

BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def _annotations(obj: Obj) -> dict[str, str]:
    return metadata(obj).get("annotations") or {}


def _storage(resources: Obj | None) -> str:
    """The `storage` quantity's canonical text; a missing quantity is the zero Quantity, `0`."""
    value = (resources or {}).get("storage")
    return canonical_quantity(value) if value is not None else "0"


def _pv_row(pv: Obj, now: datetime) -> list[Cell]:
    s = spec(pv)
    claim = s.get("claimRef")
    annotations = _annotations(pv)
    storage_class = annotations.get(BETA_STORAGE_CLASS_ANNOTATION, s.get("storageClassName") or "")
    return [
        name_of(pv),
        _storage(s.get("capacity")),
        access_modes(s.get("accessModes")),
        s.get("persistentVolumeReclaimPolicy") or "",
        "Terminating" if is_deleting(pv) else (status(pv).get("phase") or ""),
        f"{claim.get('namespace') or ''}/{claim.get('name') or ''}" if claim is not None else "",
        storage_class,
        s.get("volumeAttributesClassName") if s.get("volumeAttributesClassName") is not None else "<unset>",
        status(pv).get("reason") or "",
        age_of(pv, now),
        s.get("volumeMode") or "<unset>",
    ]


PERSISTENT_VOLUMES = Printer(
    (
        name_column(),
        Column("Capacity", description=doc("PersistentVolumeSpec.capacity")),
        Column("Access Modes", description=doc("PersistentVolumeSpec.accessModes")),
        Column("Reclaim Policy", description=doc("PersistentVolumeSpec.persistentVolumeReclaimPolicy")),
        Column("Status", description=doc("PersistentVolumeStatus.phase")),
        Column("Claim", description=doc("PersistentVolumeSpec.claimRef")),
        Column("StorageClass", description="StorageClass of the pv"),
        Column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
        Column("Reason", description=doc("PersistentVolumeStatus.reason")),
        age_column(),
        wide("VolumeMode", doc("PersistentVolumeSpec.volumeMode")),
    ),
    _pv_row,
)


def _pvc_class(pvc: Obj) -> str:
    annotations = _annotations(pvc)
    if BETA_STORAGE_CLASS_ANNOTATION in annotations:
        return annotations[BETA_STORAGE_CLASS_ANNOTATION]
    return spec(pvc).get("storageClassName") or ""


def _pvc_row(pvc: Obj, now: datetime) -> list[Cell]:
    s, st = spec(pvc), status(pvc)
    capacity = modes = ""
    if s.get("volumeName"):
        modes = access_modes(st.get("accessModes"))
        capacity = _storage(st.get("capacity"))
    return [
        name_of(pvc),
        "Terminating" if is_deleting(pvc) else (st.get("phase") or ""),
        s.get("volumeName") or "",
        capacity,
        modes,
        _pvc_class(pvc),
        s.get("volumeAttributesClassName") if s.get("volumeAttributesClassName") is not None else "<unset>",
        age_of(pvc, now),
        s.get("volumeMode") or "<unset>",
    ]


PERSISTENT_VOLUME_CLAIMS = Printer(
    (
        name_column(),
        Column("Status", description=doc("PersistentVolumeClaimStatus.phase")),
        Column("Volume", description=doc("PersistentVolumeClaimSpec.volumeName")),
        Column("Capacity", description=doc("PersistentVolumeClaimStatus.capacity")),
        Column("Access Modes", description=doc("PersistentVolumeClaimStatus.accessModes")),
        Column("StorageClass", description="StorageClass of the pvc"),
        Column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
        age_column(),
        wide("VolumeMode", doc("PersistentVolumeClaimSpec.volumeMode")),
    ),
    _pvc_row,
)


def _storage_class_row(sc: Obj, now: datetime) -> list[Cell]:
    annotations = _annotations(sc)
    name = name_of(sc)
    if any(annotations.get(key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS):
        name += " (default)"
    return [
        name,
        sc.get("provisioner") or "",
        sc.get("reclaimPolicy") or "Delete",
        sc.get("volumeBindingMode") or "Immediate",
        bool(sc.get("allowVolumeExpansion")),
        age_of(sc, now),
    ]


STORAGE_CLASSES = Printer(
    (
        name_column(),
        Column("Provisioner", description=doc("StorageClass.provisioner")),
        Column("ReclaimPolicy", description=doc("StorageClass.reclaimPolicy")),
        Column("VolumeBindingMode", description=doc("StorageClass.volumeBindingMode")),
        Column("AllowVolumeExpansion", description=doc("StorageClass.allowVolumeExpansion")),
        age_column(),
    ),
    _storage_class_row,
)
