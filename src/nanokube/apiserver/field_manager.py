"""The field manager of a write request: who the writer is and which fields it takes (metadata.managedFields).

kube-apiserver runs it in its create/update/patch handlers (endpoints/handlers: managerOrUserAgent, the
FieldManager chain); here the registry calls `UpdateTracker` on the defaulted object just before validation,
and PATCH with application/apply-patch+yaml goes through `apply`.
"""

from __future__ import annotations

from typing import Any

from nanokube.api import errors, meta
from nanokube.api.errors import ApiError, FieldError
from nanokube.api.meta import Obj
from nanokube.api.patch import fieldpath, managed_fields, typed
from nanokube.api.patch.fieldpath import Path
from nanokube.api.patch.server_side_apply import server_side_apply
from nanokube.api.served_resources import Resource

_MAX_MANAGER = 128


def manager_name(field_manager: str | None, user_agent: str | None) -> str:
    """managerOrUserAgent: ?fieldManager=, else the User-Agent up to its first '/', printable, 128 bytes at most."""
    if field_manager:
        return field_manager
    prefix = (user_agent or "").split("/", 1)[0]
    printable = "".join(ch for ch in prefix if ch.isprintable())
    return printable.encode()[:_MAX_MANAGER].decode(errors="ignore")


def check_field_manager(field_manager: str | None) -> None:
    """ValidateFieldManager for ?fieldManager= (only printable characters, at most 128)."""
    if field_manager is None:
        return
    if len(field_manager) > _MAX_MANAGER:
        raise _invalid_options("FieldValueTooLong", field_manager, "may not be more than 128 bytes", "")
    if not all(ch.isprintable() for ch in field_manager):
        raise _invalid_options("FieldValueInvalid", field_manager, "invalid characters, all characters must be "
                               "printable", "")


def _invalid_options(reason: str, value: str, detail: str, options: str) -> ApiError:
    err = FieldError(reason, "fieldManager", value, detail)
    return errors.invalid_object("meta.k8s.io", options or "PatchOptions", "", [err])


def ignored_paths(has_status: bool, subresource: str | None) -> list[Path]:
    """Reset fields (GetResetFields): the main resource does not own status, /status owns nothing but status."""
    if subresource == "status":
        return [(fieldpath.field("spec"),)]
    if has_status:
        return [(fieldpath.field("status"),)]
    return []


class UpdateTracker:
    """Records an Update by `manager` into the new object's managedFields (create, PUT, non-apply PATCH)."""

    def __init__(self, res: Resource, manager: str, subresource: str | None = None, has_status: bool = False) -> None:
        self.res = res
        self.manager = manager
        self.subresource = subresource or ""
        self.ignored = ignored_paths(has_status, subresource)

    def __call__(self, old: Obj | None, new: Obj) -> None:
        md = new.setdefault("metadata", {})
        live_entries = (old or {}).get("metadata", {}).get("managedFields")
        sent = md.get("managedFields")
        if self.subresource or sent is None:
            entries = live_entries
        elif sent == [] or sent == [{}]:
            entries = []
        else:
            entries = sent
        try:
            managers = managed_fields.decode(entries)
        except managed_fields.ManagedFieldsError:
            try:
                managers = managed_fields.decode(live_entries)
            except managed_fields.ManagedFieldsError:
                managers = {}
        if old is not None and not managers:  # skipnonapplied: an untracked object stays untracked on update
            md.pop("managedFields", None)
            return
        t = typed.root_type(self.res.group, self.res.version, self.res.kind)
        try:
            updated = managed_fields.track_update(old or {}, new, managers, self.manager, self.res.api_version,
                                                  self.subresource, t, self.ignored, meta.rfc3339())
        except typed.TypedError:
            return  # an object the schema cannot type keeps its managedFields as they were
        if entries and managed_fields.same_sets(updated, managers):
            encoded = managed_fields.retimed(entries, updated)  # the common case: only a time moved
        else:
            encoded = managed_fields.encode(updated)
        if encoded:
            md["managedFields"] = encoded
        else:
            md.pop("managedFields", None)


def apply(res: Resource, live: Obj | None, applied: Any, field_manager: str | None, force: bool,
          subresource: str | None = None, has_status: bool = False) -> Obj:
    """PATCH application/apply-patch+yaml (applyPatcher): checks the configuration, then server-side apply."""
    if not field_manager:
        raise errors.invalid_object("meta.k8s.io", "PatchOptions", "", [
            FieldError("FieldValueRequired", "fieldManager", None, "is required for apply patch")])
    check_field_manager(field_manager)
    if not isinstance(applied, dict):
        raise errors.bad_request("error decoding YAML: the apply patch must be an object")
    md = applied.get("metadata")
    if isinstance(md, dict) and md.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    api_version = applied.get("apiVersion")
    kind = applied.get("kind")
    if kind != res.kind or (api_version or "").split("/")[0] not in (res.group, res.api_version):
        group, _, version = (api_version or "").rpartition("/")
        raise errors.bad_request(f"invalid object type: {group}/{version}, Kind={kind or ''}")
    if api_version != res.api_version:
        raise errors.bad_request(f"Incorrect version specified in apply patch. Specified patch version: "
                                 f"{api_version}, expected: {res.api_version}")
    return server_side_apply(live, applied, field_manager, force, subresource=subresource or "",
                             ignored=ignored_paths(has_status, subresource))
