"""Deployments, ReplicaSets and ControllerRevisions."""

from __future__ import annotations

from datetime import datetime

from nanokube.apiserver.printing.base import (
    Cell,
    Column,
    Obj,
    Printer,
    age_column,
    age_of,
    api_doc,
    as_int,
    containers_cells,
    doc,
    metadata,
    name_column,
    name_of,
    spec,
    status,
    wide,
)
from nanokube.apiserver.printing.labels import (
    InvalidSelector,
    format_label_selector,
    format_labels,
    selector_string,
)

CONTAINERS_DOC = "Names of each container in the template."
IMAGES_DOC = "Images referenced by each container in the template."


def _replicas(obj: Obj) -> int:
    """spec.replicas; apps/v1 defaults a missing value to 1."""
    value = spec(obj).get("replicas")
    return 1 if value is None else as_int(value)


def _template_spec(obj: Obj) -> Obj:
    return (spec(obj).get("template") or {}).get("spec") or {}


def _deployment_row(deploy: Obj, now: datetime) -> list[Cell]:
    st = status(deploy)
    names, images = containers_cells(_template_spec(deploy))
    try:
        selector = selector_string(spec(deploy).get("selector"))
    except InvalidSelector:
        selector = "<invalid>"
    return [
        name_of(deploy),
        f"{as_int(st.get('readyReplicas'))}/{_replicas(deploy)}",
        as_int(st.get("updatedReplicas")),
        as_int(st.get("availableReplicas")),
        age_of(deploy, now),
        names,
        images,
        selector,
    ]


DEPLOYMENTS = Printer(
    (
        name_column(),
        Column("Ready", description="Number of the pod with ready state"),
        Column("Up-to-date", description=doc("DeploymentStatus.updatedReplicas")),
        Column("Available", description=doc("DeploymentStatus.availableReplicas")),
        age_column(),
        wide("Containers", CONTAINERS_DOC),
        wide("Images", IMAGES_DOC),
        wide("Selector", doc("DeploymentSpec.selector")),
    ),
    _deployment_row,
)


def _replica_set_row(rs: Obj, now: datetime) -> list[Cell]:
    st = status(rs)
    names, images = containers_cells(_template_spec(rs))
    return [
        name_of(rs),
        _replicas(rs),
        as_int(st.get("replicas")),
        as_int(st.get("readyReplicas")),
        age_of(rs, now),
        names,
        images,
        format_label_selector(spec(rs).get("selector")),
    ]


REPLICA_SETS = Printer(
    (
        name_column(),
        Column("Desired", "integer", doc("ReplicaSetSpec.replicas")),
        Column("Current", "integer", doc("ReplicaSetStatus.replicas")),
        Column("Ready", "integer", doc("ReplicaSetStatus.readyReplicas")),
        age_column(),
        wide("Containers", CONTAINERS_DOC),
        wide("Images", IMAGES_DOC),
        wide("Selector", doc("ReplicaSetSpec.selector")),
    ),
    _replica_set_row,
)


def _controller_name(obj: Obj) -> str:
    """`<kind>.<group>/<name>` lower-cased kind and group (formatResourceName), `<none>` without a controller."""
    for ref in metadata(obj).get("ownerReferences") or []:
        if ref.get("controller") is True:
            api_version = ref.get("apiVersion") or ""
            group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
            kind = ref.get("kind") or ""
            if not kind and not group:
                return ref.get("name") or ""
            group_kind = f"{kind}.{group}" if group else kind
            return f"{group_kind.lower()}/{ref.get('name') or ''}"
    return "<none>"


def _controller_revision_row(rev: Obj, now: datetime) -> list[Cell]:
    return [name_of(rev), _controller_name(rev), as_int(rev.get("revision")), age_of(rev, now)]


CONTROLLER_REVISIONS = Printer(
    (
        name_column(),
        Column("Controller", description="Controller of the object"),
        Column("Revision", description=doc("ControllerRevision.revision")),
        age_column(),
    ),
    _controller_revision_row,
)


def _stateful_set_row(sts: Obj, now: datetime) -> list[Cell]:
    names, images = containers_cells(_template_spec(sts))
    return [name_of(sts), f"{as_int(status(sts).get('readyReplicas'))}/{_replicas(sts)}", age_of(sts, now),
            names, images]


STATEFUL_SETS = Printer(
    (
        name_column(),
        Column("Ready", description="Number of the pod with ready state"),
        age_column(),
        wide("Containers", CONTAINERS_DOC),
        wide("Images", IMAGES_DOC),
    ),
    _stateful_set_row,
)


def _daemon_set_row(ds: Obj, now: datetime) -> list[Cell]:
    st = status(ds)
    names, images = containers_cells(_template_spec(ds))
    return [
        name_of(ds),
        as_int(st.get("desiredNumberScheduled")),
        as_int(st.get("currentNumberScheduled")),
        as_int(st.get("numberReady")),
        as_int(st.get("updatedNumberScheduled")),
        as_int(st.get("numberAvailable")),
        format_labels(_template_spec(ds).get("nodeSelector")),
        age_of(ds, now),
        names,
        images,
        format_label_selector(spec(ds).get("selector")),
    ]


def _ds_doc(field: str) -> str:
    return api_doc("apps.v1.DaemonSetStatus", field)


DAEMON_SETS = Printer(
    (
        name_column(),
        Column("Desired", "integer", _ds_doc("desiredNumberScheduled")),
        Column("Current", "integer", _ds_doc("currentNumberScheduled")),
        Column("Ready", "integer", _ds_doc("numberReady")),
        Column("Up-to-date", "integer", _ds_doc("updatedNumberScheduled")),
        Column("Available", "integer", _ds_doc("numberAvailable")),
        Column("Node Selector", description=api_doc("core.v1.PodSpec", "nodeSelector")),
        age_column(),
        wide("Containers", CONTAINERS_DOC),
        wide("Images", IMAGES_DOC),
        wide("Selector", api_doc("apps.v1.DaemonSetSpec", "selector")),
    ),
    _daemon_set_row,
)


def _replication_controller_row(rc: Obj, now: datetime) -> list[Cell]:
    st = status(rc)
    names, images = containers_cells(_template_spec(rc))
    return [name_of(rc), _replicas(rc), as_int(st.get("replicas")), as_int(st.get("readyReplicas")), age_of(rc, now),
            names, images, format_labels(spec(rc).get("selector"))]


REPLICATION_CONTROLLERS = Printer(
    (
        name_column(),
        Column("Desired", "integer", api_doc("core.v1.ReplicationControllerSpec", "replicas")),
        Column("Current", "integer", api_doc("core.v1.ReplicationControllerStatus", "replicas")),
        Column("Ready", "integer", api_doc("core.v1.ReplicationControllerStatus", "readyReplicas")),
        age_column(),
        wide("Containers", CONTAINERS_DOC),
        wide("Images", IMAGES_DOC),
        wide("Selector", api_doc("core.v1.ReplicationControllerSpec", "selector")),
    ),
    _replication_controller_row,
)
