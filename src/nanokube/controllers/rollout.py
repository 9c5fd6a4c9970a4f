"""Pure Deployment arithmetic (pkg/controller/deployment/util): template hash, surge/unavailable
fenceposts, how far to scale the new and old ReplicaSets, proportional scaling, status and conditions.

ReplicaSets and Deployments are plain API dicts; nothing here does I/O.

The pod-template-hash is NOT byte-identical to Kubernetes'. Kubernetes (controller.ComputeHash) feeds FNV-32a
with `dump.ForHash` (go-spew `%#v`, sorted keys, no methods/addresses) of the typed v1.PodTemplateSpec, then
the collisionCount (uint32 little-endian in 8 bytes), then SafeEncodeString of the decimal sum. That dump
prints every field of every Go struct reachable from PodTemplateSpec in declaration order, zero values
included (`Name:"", ..., loc:(*time.Location)(nil)`), Go type names, nil-vs-empty slices, and the private
fields of resource.Quantity (whose cached string depends on how the object was decoded). Reproducing it
means modelling the v1.32 Go types field by field, and the result would still change whenever Kubernetes
adds a field (its own hashes change across versions). Nothing depends on the value: the controller finds a
Deployment's ReplicaSet by comparing templates without the label (EqualIgnoreHash), as Kubernetes does. So
we keep FNV-32a over canonical JSON (sorted keys, nulls and empty collections dropped), with Kubernetes'
collisionCount suffix and SafeEncodeString alphabet: same length, same alphabet, stable for a template.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime
from typing import Any

import orjson

from nanokube.api.meta import RANDOM_ALPHABET, Obj, parse_time, rfc3339

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_NOT_COPIED = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
               MAX_REPLICAS, "deprecated.deployment.rollback.to"}
REVISION_HISTORY_LIMIT_CHARS = 2000

# Condition reasons (deployment/util/deployment_util.go)
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
RS_UPDATED_REASON = "ReplicaSetUpdated"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"


# -- hashing -----------------------------------------------------------------------------------------
def _prune(value: Any) -> Any:
    """Drop nulls and empty collections: they round-trip through the API as absent."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(RANDOM_ALPHABET[ord(ch) % len(RANDOM_ALPHABET)] for ch in text)


def compute_hash(template: Obj, collision_count: int | None = None) -> str:
    """FNV-32a of the pod template (canonical JSON instead of Go's struct dump), safe-encoded."""
    data = orjson.dumps(_prune(template), option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0"
    return safe_encode(str(fnv32a(data)))


def without_hash(template: Obj) -> Obj:
    out = copy.deepcopy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return _prune(out)


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return without_hash(a) == without_hash(b)


# -- small readers -----------------------------------------------------------------------------------
def replicas(obj: Obj | None) -> int:
    if obj is None:
        return 0
    value = obj.get("spec", {}).get("replicas")
    return 1 if value is None else int(value)


def status_of(obj: Obj | None, field: str) -> int:
    return int((obj or {}).get("status", {}).get(field) or 0)


def annotations(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


def revision(rs: Obj) -> int:
    try:
        return int(annotations(rs).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rss: list[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def created(obj: Obj) -> tuple[str, str]:
    md = obj.get("metadata", {})
    return (md.get("creationTimestamp") or "", md.get("name") or "")


def active(rss: list[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def total_replicas(rss: list[Obj | None]) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def total_status(rss: list[Obj | None], field: str) -> int:
    return sum(status_of(rs, field) for rs in rss if rs is not None)


# -- fenceposts --------------------------------------------------------------------------------------
def scaled_value(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        fraction = int(text[:-1]) * total / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(text)


def is_rolling(d: Obj) -> bool:
    return (d.get("spec", {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling_params(d: Obj) -> tuple[Any, Any]:
    ru = (d.get("spec", {}).get("strategy") or {}).get("rollingUpdate") or {}
    return ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%")


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    return resolve_fenceposts(*_rolling_params(d), replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    want = replicas(d)
    if not is_rolling(d) or want == 0:
        return 0
    unavailable = resolve_fenceposts(*_rolling_params(d), want)[1]
    return min(unavailable, want)


# -- rolling update steps ----------------------------------------------------------------------------
def new_rs_new_replicas(d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> int:
    """How many replicas the new ReplicaSet should have at this step."""
    want = replicas(d)
    if not is_rolling(d):
        return want
    current_total = total_replicas(all_rss)
    max_total = want + max_surge(d)
    if current_total >= max_total:
        return replicas(new_rs)
    scale_up = min(max_total - current_total, want - replicas(new_rs))
    return replicas(new_rs) + scale_up


def old_scale_down_plan(d: Obj, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj | None) -> dict[str, int]:
    """ReplicaSet name -> new replica count for the old ReplicaSets (reconcileOldReplicaSets)."""
    old_total = total_replicas(old_rss)
    if old_total == 0:
        return {}
    all_total = total_replicas(all_rss)
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = replicas(new_rs) - status_of(new_rs, "availableReplicas")
    max_scaled_down = all_total - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    sizes = {rs["metadata"]["name"]: replicas(rs) for rs in old_rss}
    ordered = sorted(old_rss, key=created)
    # 1. scale down unhealthy old replicas first: they cannot make availability worse
    cleaned = 0
    for rs in ordered:
        if cleaned >= max_scaled_down:
            break
        name, size = rs["metadata"]["name"], sizes[rs["metadata"]["name"]]
        if size == 0 or size == status_of(rs, "availableReplicas"):
            continue
        step = min(max_scaled_down - cleaned, size - status_of(rs, "availableReplicas"))
        sizes[name] = size - step
        cleaned += step
    # 2. then healthy ones, as far as minAvailable allows
    available = total_status(all_rss, "availableReplicas")
    if available > min_available:
        budget = available - min_available
        done = 0
        for rs in ordered:
            if done >= budget:
                break
            name = rs["metadata"]["name"]
            if sizes[name] == 0:
                continue
            step = min(sizes[name], budget - done)
            sizes[name] -= step
            done += step
    return {name: size for name, size in sizes.items() if size != replicas(_by_name(old_rss, name))}


def _by_name(rss: list[Obj], name: str) -> Obj:
    return next(rs for rs in rss if rs["metadata"]["name"] == name)


# -- scaling (proportional) --------------------------------------------------------------------------
def desired_annotation(rs: Obj, key: str = DESIRED_REPLICAS) -> int | None:
    try:
        return int(annotations(rs)[key])
    except (KeyError, ValueError):
        return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    want = replicas(d)
    return desired_annotation(rs) == want and replicas(rs) == want and status_of(rs, "availableReplicas") == want


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=created, reverse=True)
    actives = active([*newest_first, new_rs])
    if not actives:
        return new_rs if new_rs is not None else newest_first[0]
    if len(actives) == 1:
        return actives[0]
    return None


def is_scaling_event(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
    for rs in active([*old_rss, new_rs]):
        desired = desired_annotation(rs)
        if desired is not None and desired != replicas(d):
            return True
    return False


def _fraction(rs: Obj, d: Obj) -> int:
    if replicas(d) == 0:
        return -replicas(rs)
    deployment_replicas = replicas(d) + max_surge(d)
    annotated = desired_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = status_of(d, "replicas")
    if not annotated:
        return 0
    new_size = replicas(rs) * deployment_replicas / annotated
    return math.floor(new_size + 0.5) - replicas(rs)


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def scale_plan(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> dict[str, int]:
    """ReplicaSet name -> replicas after a scaling event (DeploymentController.scale)."""
    target = find_active_or_latest(new_rs, old_rss)
    if target is not None:
        return {} if replicas(target) == replicas(d) else {target["metadata"]["name"]: replicas(d)}
    if is_saturated(d, new_rs):
        return {rs["metadata"]["name"]: 0 for rs in active(list(old_rss))}
    if not is_rolling(d):
        return {}
    all_rss = active([*old_rss, new_rs])
    allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
    to_add = allowed - total_replicas(all_rss)
    if to_add > 0:  # largest first, newer first on ties
        all_rss.sort(key=lambda rs: (-replicas(rs), tuple(-ord(c) for c in created(rs)[0])))
    elif to_add < 0:  # largest first, older first on ties
        all_rss.sort(key=lambda rs: (-replicas(rs), created(rs)))
    sizes: dict[str, int] = {}
    added = 0
    for rs in all_rss:
        name = rs["metadata"]["name"]
        if to_add != 0:
            proportion = _proportion(rs, d, to_add, added)
            sizes[name] = replicas(rs) + proportion
            added += proportion
        else:
            sizes[name] = replicas(rs)
    if all_rss and added != to_add:
        first = all_rss[0]["metadata"]["name"]
        sizes[first] = max(sizes[first] + to_add - added, 0)
    return sizes


# -- annotations -------------------------------------------------------------------------------------
def sync_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Copy the Deployment's annotations and set the revision on `rs` in place; True when changed."""
    rs_ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in annotations(d).items():
        if key not in _NOT_COPIED and rs_ann.get(key) != value:
            rs_ann[key] = value
            changed = True
    old_text = rs_ann.get(REVISION)
    try:
        old = int(old_text) if old_text is not None else 0
    except ValueError:
        return changed
    if old < new_revision:
        rs_ann[REVISION] = str(new_revision)
        changed = True
        if old_text is not None:
            history = [h for h in rs_ann.get(REVISION_HISTORY, "").split(",") if h]
            history.append(old_text)
            while len(",".join(history)) > REVISION_HISTORY_LIMIT_CHARS and len(history) > 1:
                history.pop(0)
            rs_ann[REVISION_HISTORY] = ",".join(history)
    if not exists:
        changed |= set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d))
    return changed


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    rs_ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if rs_ann.get(key) != value:
            rs_ann[key] = value
            changed = True
    return changed


# -- status and conditions ---------------------------------------------------------------------------
def get_condition(status: Obj, ctype: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def new_condition(ctype: str, status: str, reason: str, message: str, now: datetime | None = None) -> Obj:
    stamp = rfc3339(now)
    return {"type": ctype, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: Obj, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def calculate_status(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj, now: datetime | None = None) -> Obj:
    available = total_status(all_rss, "availableReplicas")
    total = total_replicas(all_rss)
    status: Obj = {
        "observedGeneration": d.get("metadata", {}).get("generation", 0),
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": status_of(new_rs, "replicas"),
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
        "conditions": copy.deepcopy(d.get("status", {}).get("conditions") or []),
    }
    if d.get("status", {}).get("collisionCount") is not None:
        status["collisionCount"] = d["status"]["collisionCount"]
    if available >= replicas(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE_REASON,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE_REASON,
                                            "Deployment does not have minimum availability.", now))
    return status


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return (status.get("updatedReplicas") == want and status.get("replicas") == want
            and status.get("availableReplicas") == want
            and status.get("observedGeneration", 0) >= d.get("metadata", {}).get("generation", 0))


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = d.get("status", {})
    old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_old = int(status.get("replicas") or 0) - int(status.get("updatedReplicas") or 0)
    return (status.get("updatedReplicas", 0) > int(old.get("updatedReplicas") or 0) or new_old < old_old
            or status.get("readyReplicas", 0) > int(old.get("readyReplicas") or 0)
            or status.get("availableReplicas", 0) > int(old.get("availableReplicas") or 0))


def progress_deadline(d: Obj) -> int | None:
    value = d.get("spec", {}).get("progressDeadlineSeconds")
    return None if value is None or value == 2**31 - 1 else int(value)


def deployment_timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    deadline = progress_deadline(d)
    cond = get_condition(status, "Progressing")
    if deadline is None or cond is None:
        return False
    if cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and (now - since).total_seconds() > deadline


def rollout_status(d: Obj, all_rss: list[Obj | None], new_rs: Obj | None, now: datetime) -> Obj:
    """The status syncRolloutStatus would write (conditions included)."""
    status = calculate_status(all_rss, new_rs, d, now)
    deadline = progress_deadline(d)
    if deadline is None:
        remove_condition(status, "Progressing")
    current = get_condition(d.get("status", {}), "Progressing")
    complete_before = (status["replicas"] == status["updatedReplicas"] and current is not None
                       and current.get("reason") == NEW_RS_AVAILABLE_REASON)
    if deadline is not None and not complete_before:
        name = new_rs["metadata"]["name"] if new_rs is not None else None
        dname = d["metadata"]["name"]
        if deployment_complete(d, status):
            message = f'ReplicaSet "{name}" has successfully progressed.' if name else \
                f'Deployment "{dname}" has successfully progressed.'
            set_condition(status, new_condition("Progressing", "True", NEW_RS_AVAILABLE_REASON, message, now))
        elif deployment_progressing(d, status):
            message = f'ReplicaSet "{name}" is progressing.' if name else f'Deployment "{dname}" is progressing.'
            cond = new_condition("Progressing", "True", RS_UPDATED_REASON, message, now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, "Progressing")
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            message = f'ReplicaSet "{name}" has timed out progressing.' if name else \
                f'Deployment "{dname}" has timed out progressing.'
            set_condition(status, new_condition("Progressing", "False", TIMED_OUT_REASON, message, now))
    failure = next((c for rs in all_rss if rs is not None for c in rs.get("status", {}).get("conditions") or []
                    if c.get("type") == "ReplicaFailure" and c.get("status") == "True"), None)
    if failure is not None:
        set_condition(status, {"type": "ReplicaFailure", "status": "True", "reason": failure.get("reason"),
                               "message": failure.get("message"),
                               "lastUpdateTime": failure.get("lastTransitionTime") or rfc3339(now),
                               "lastTransitionTime": failure.get("lastTransitionTime") or rfc3339(now)})
    else:
        remove_condition(status, "ReplicaFailure")
    return status


def status_equal(a: Obj, b: Obj) -> bool:
    return _prune(a) == _prune(b)
