"""Namespaces, Secrets, ConfigMaps, ServiceAccounts and Leases: a name, a count or two, an age."""

from __future__ import annotations

from datetime import datetime

from nanokube.apiserver.printing.base import (
    Cell,
    Column,
    Obj,
    Printer,
    age_column,
    age_of,
    doc,
    name_column,
    name_of,
    spec,
    status,
)

NAMESPACES = Printer(
    (name_column(), Column("Status", description="The status of the namespace"), age_column()),
    lambda ns, now: [name_of(ns), status(ns).get("phase") or "", age_of(ns, now)],
)


def _secret_row(secret: Obj, now: datetime) -> list[Cell]:
    # Only keys are counted; values never reach a cell. stringData is merged into data on the way in.
    keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    return [name_of(secret), secret.get("type") or "Opaque", len(keys), age_of(secret, now)]


SECRETS = Printer(
    (
        name_column(),
        Column("Type", description=doc("Secret.type")),
        Column("Data", description=doc("Secret.data")),
        age_column(),
    ),
    _secret_row,
)


def _config_map_row(cm: Obj, now: datetime) -> list[Cell]:
    return [name_of(cm), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), age_of(cm, now)]


CONFIG_MAPS = Printer(
    (name_column(), Column("Data", description=doc("ConfigMap.data")), age_column()),
    _config_map_row,
)

SERVICE_ACCOUNTS = Printer(
    (name_column(), Column("Secrets", description=doc("ServiceAccount.secrets")), age_column()),
    lambda sa, now: [name_of(sa), len(sa.get("secrets") or []), age_of(sa, now)],
)

LEASES = Printer(
    (name_column(), Column("Holder", description=doc("LeaseSpec.holderIdentity")), age_column()),
    lambda lease, now: [name_of(lease), spec(lease).get("holderIdentity") or "", age_of(lease, now)],
)
