"""The decisions of a delete, as Kubernetes' generic store makes them (apiserver registry/rest/delete.go
BeforeDelete, registry/generic/registry/store.go deletionFinalizersForGarbageCollection and markAsDeleting,
and the pod strategy's CheckGracefulDelete). Pure functions on plain dicts; the registry does the I/O."""

from __future__ import annotations

from datetime import timedelta

from nanokube.api import errors, meta
from nanokube.api.errors import FieldError, GoLiteral, go_quote
from nanokube.api.meta import Obj
from nanokube.api.served_resources import Resource

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
POLICIES = ("Foreground", "Background", "Orphan")
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"


def check_options(options: Obj) -> str | None:
    """ValidateDeleteOptions; returns the propagation policy in effect (None: the resource's default)."""
    policy = options.get("propagationPolicy")
    orphan = options.get("orphanDependents")
    errs: list[FieldError] = []
    if orphan is not None and policy is not None:
        errs.append(errors.invalid("propagationPolicy", policy,
                                   "orphanDependents and deletionPropagation cannot be both set"))
    if policy is not None and policy not in POLICIES:
        # The supported values are listed in the order the Go code gives them, not sorted.
        errs.append(FieldError("FieldValueNotSupported", "propagationPolicy", GoLiteral(go_quote(str(policy))),
                               "supported values: " + ", ".join(f'"{p}"' for p in (*POLICIES, "nil"))))
    if errs:
        raise errors.invalid_object("meta.k8s.io", "DeleteOptions", "", errs)
    if policy is None and orphan is not None:
        return "Orphan" if orphan else "Background"
    return policy


def check_preconditions(res: Resource, obj: Obj, pre: Obj) -> None:
    md = obj["metadata"]
    name = md["name"]
    if pre.get("uid") is not None and pre["uid"] != md.get("uid"):
        raise errors.conflict(res.group, res.kind, name, f"the UID in the precondition ({pre['uid']}) does not "
                              f"match the UID in record ({md.get('uid')}). The object might have been deleted and "
                              "then recreated")
    if pre.get("resourceVersion") is not None and pre["resourceVersion"] != md.get("resourceVersion"):
        raise errors.conflict(res.group, res.kind, name, "the ResourceVersion in the precondition "
                              f"({pre['resourceVersion']}) does not match the ResourceVersion in record "
                              f"({md.get('resourceVersion')}). The object might have been modified")


def _pod_grace_period(pod: Obj, requested: int | None) -> int:
    """The pod strategy's CheckGracefulDelete: unscheduled or finished pods go at once."""
    spec = pod.get("spec") or {}
    period = requested if requested is not None else int(spec.get("terminationGracePeriodSeconds") or 0)
    if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
        period = 0
    return period


def before_delete(res: Resource, obj: Obj, options: Obj) -> tuple[bool, bool]:
    """BeforeDelete: (graceful, pending). Sets deletionTimestamp/deletionGracePeriodSeconds on obj for a
    graceful delete; `pending` means a graceful deletion is under way and this request would not shorten it."""
    md = obj["metadata"]
    grace = options.get("gracePeriodSeconds")
    if grace is not None and grace < 0:
        grace = 1
    if res.plural == "namespaces":
        return _namespace_deletion(obj), False
    if res.plural == "customresourcedefinitions" and not md.get("deletionTimestamp"):
        # The CRD store's Delete: its custom objects go first (apiserver/crds.py removes the finalizer).
        if CRD_CLEANUP not in (md.get("finalizers") or []):
            md["finalizers"] = [*(md.get("finalizers") or []), CRD_CLEANUP]
        return False, False
    if res.plural != "pods":  # only pods are deleted gracefully
        return False, False
    current = md.get("deletionGracePeriodSeconds")
    if md.get("deletionTimestamp"):
        if not current:
            return False, False
        if grace is None or grace >= current:
            return False, True
        started = meta.parse_time(md["deletionTimestamp"]) - timedelta(seconds=current)  # type: ignore[operator]
        md["deletionTimestamp"] = meta.rfc3339(started + timedelta(seconds=grace))
        md["deletionGracePeriodSeconds"] = grace
        return True, False
    period = _pod_grace_period(obj, grace)
    md["deletionTimestamp"] = meta.rfc3339(meta.now() + timedelta(seconds=period))
    md["deletionGracePeriodSeconds"] = period
    if md.get("generation"):
        md["generation"] += 1
    return True, False


def _namespace_deletion(ns: Obj) -> bool:
    """The namespace REST's Delete: while spec.finalizers remain, the namespace only turns Terminating."""
    if not (ns.get("spec") or {}).get("finalizers"):
        return False
    md = ns["metadata"]
    md.setdefault("deletionTimestamp", meta.rfc3339())
    ns.setdefault("status", {})["phase"] = "Terminating"
    return True


def gc_finalizers(res: Resource, obj: Obj, options: Obj, policy: str | None) -> list[str]:
    """deletionFinalizersForGarbageCollection: the object's finalizers with `orphan` / `foregroundDeletion`
    as the delete options (or, without any, the finalizers already there) ask for."""
    current = list(obj["metadata"].get("finalizers") or [])
    if policy is None:  # no explicit policy: a finalizer already there decides; the default is Background
        orphan = ORPHAN in current
        foreground = FOREGROUND in current and not orphan
    else:
        orphan = policy == "Orphan"
        foreground = policy == "Foreground"
    wanted = [f for f in current if f not in (ORPHAN, FOREGROUND)]
    if orphan:
        wanted.append(ORPHAN)
    if foreground:
        wanted.append(FOREGROUND)
    return current if set(wanted) == set(current) else wanted


def mark_as_deleting(obj: Obj) -> None:
    """markAsDeleting: an object kept for its finalizers gets deletionTimestamp now (never later) and grace 0."""
    md = obj["metadata"]
    now = meta.now()
    if not md.get("deletionTimestamp") and md.get("generation"):
        md["generation"] += 1
    existing = meta.parse_time(md.get("deletionTimestamp"))
    if existing is None or existing > now:
        md["deletionTimestamp"] = meta.rfc3339(now)
    md["deletionGracePeriodSeconds"] = 0
