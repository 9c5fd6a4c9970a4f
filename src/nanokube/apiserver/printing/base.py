"""The pieces every resource printer is built from: column definitions, a printer, small object readers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nanokube.api.meta import Obj
from nanokube.apiserver.printing.docs import FIELD_DOCS
from nanokube.apiserver.printing.duration import since

Cell = str | int | bool
RowFunc = Callable[[Obj, datetime], list[Cell]]
ConditionsFunc = Callable[[Obj], list[Obj]]


@dataclass(frozen=True)
class Column:
    """metav1.TableColumnDefinition. Priority 1 columns are the ones kubectl shows only with `-o wide`."""

    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> Obj:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class Printer:
    """Columns plus the function that turns one object into the cells of its row (always the wide set)."""

    columns: tuple[Column, ...]
    row: RowFunc
    conditions: ConditionsFunc | None = None

    def definitions(self) -> list[Obj]:
        return [c.definition() for c in self.columns]


def doc(key: str) -> str:
    return FIELD_DOCS[key]


def name_column() -> Column:
    return Column("Name", format="name", description=doc("ObjectMeta.name"))


def age_column() -> Column:
    return Column("Age", description=doc("ObjectMeta.creationTimestamp"))


def wide(name: str, description: str, type_: str = "string") -> Column:
    return Column(name, type_, description, priority=1)


def metadata(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def name_of(obj: Obj) -> str:
    return metadata(obj).get("name") or ""


def age_of(obj: Obj, now: datetime) -> str:
    return since(metadata(obj).get("creationTimestamp"), now)


def is_deleting(obj: Obj) -> bool:
    return bool(metadata(obj).get("deletionTimestamp"))


def spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def as_int(value: Any) -> int:
    """An int32/int64 field as Go sees it: absent or null is 0."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def containers_cells(pod_spec: Obj) -> tuple[str, str]:
    """layoutContainerCells: container names and images, each comma-joined."""
    containers = pod_spec.get("containers") or []
    return (",".join(c.get("name") or "" for c in containers), ",".join(c.get("image") or "" for c in containers))


def access_modes(modes: list[str] | None) -> str:
    """GetAccessModesAsString: always in the order RWO,ROX,RWX,RWOP, duplicates dropped."""
    present = set(modes or [])
    order = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))
    return ",".join(short for mode, short in order if mode in present)


def join_host_port(host: str, port: Any) -> str:
    """net.JoinHostPort: IPv6 literals are bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def list_with_more(items: list[str], total: int, limit: int = 3, empty: str = "<unset>") -> str:
    """listWithMoreString: the first `limit` items, then ` + N more...`; `empty` when there are none."""
    text = ",".join(items[:limit])
    if total > limit:
        return f"{text} + {total - limit} more..."
    return text or empty


def api_doc(definition: str, field: str) -> str:
    """`<Type>{}.SwaggerDoc()[field]`, read from the shipped v1.32 definitions (e.g. 'apps.v1.DaemonSetStatus')."""
    from nanokube.api import openapi_schemas

    node = openapi_schemas.definitions().get("io.k8s.api." + definition) or {}
    prop = (node.get("properties") or {}).get(field) or {}
    return str(prop.get("description") or "")
