"""Nodes (printNode): STATUS from the Ready condition, ROLES from the node-role labels."""

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
    metadata,
    name_column,
    name_of,
    spec,
    status,
    wide,
)

ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"
ROLE_LABEL = "kubernetes.io/role"


def node_status(node: Obj) -> str:
    ready = None
    for condition in status(node).get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = condition  # the last one of a type wins, as in the printer's map
    parts = ["Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")]
    if spec(node).get("unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in (metadata(node).get("labels") or {}).items():
        if key.startswith(ROLE_LABEL_PREFIX):
            role = key[len(ROLE_LABEL_PREFIX):]
            if role:
                roles.add(role)
        elif key == ROLE_LABEL and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _first_address(node: Obj, kind: str) -> str:
    for address in status(node).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address") or ""
    return "<none>"


def _node_row(node: Obj, now: datetime) -> list[Cell]:
    info = status(node).get("nodeInfo") or {}
    return [
        name_of(node),
        node_status(node),
        node_roles(node),
        age_of(node, now),
        info.get("kubeletVersion") or "",
        _first_address(node, "InternalIP"),
        _first_address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


NODES = Printer(
    (
        name_column(),
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        age_column(),
        Column("Version", description=doc("NodeSystemInfo.kubeletVersion")),
        wide("Internal-IP", doc("NodeStatus.addresses")),
        wide("External-IP", doc("NodeStatus.addresses")),
        wide("OS-Image", doc("NodeSystemInfo.osImage")),
        wide("Kernel-Version", doc("NodeSystemInfo.kernelVersion")),
        wide("Container-Runtime", doc("NodeSystemInfo.containerRuntimeVersion")),
    ),
    _node_row,
)
