"""What every reader of EndpointSlices needs: the label naming the Service a slice belongs to."""

from __future__ import annotations

from nanokube.api.meta import Obj

LABEL_SERVICE_NAME = "kubernetes.io/service-name"


def slice_service_key(slice_obj: Obj) -> str | None:
    """`namespace/name` of the Service the slice belongs to, None for a slice without the label."""
    md = slice_obj.get("metadata", {})
    name = (md.get("labels") or {}).get(LABEL_SERVICE_NAME)
    return f"{md.get('namespace', 'default')}/{name}" if name else None
