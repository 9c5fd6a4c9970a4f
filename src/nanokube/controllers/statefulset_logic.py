"""What a StatefulSet wants, as pure functions (pkg/controller/statefulset/stateful_set_utils.go and
stateful_set_control.go): stable pod identities, one claim per template and ordinal, ControllerRevisions
holding the pod template, and the next step of an ordered or parallel reconcile.

`plan()` looks at the pods by ordinal and returns what to do this round; the controller executes it and
waits for the watch to call it again (level-triggered), exactly one step at a time in OrderedReady mode.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from nanokube.api.meta import Obj, condition, is_pod_ready, parse_time
from nanokube.controllers.rollout import safe_encode

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
HASH_LABEL = "controller.kubernetes.io/hash"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


def is_available(pod: Obj, min_ready_seconds: int, at: datetime) -> bool:
    """Ready for at least minReadySeconds (podutil.IsPodAvailable)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and (at - since).total_seconds() >= min_ready_seconds


# -- identity ------------------------------------------------------------------------------------------
def parent_and_ordinal(pod_name: str) -> tuple[str, int] | None:
    match = _ORDINAL.match(pod_name)
    return (match.group(1), int(match.group(2))) if match else None


def start_ordinal(sts: Obj) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def spec_replicas(sts: Obj) -> int:
    value = (sts.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def is_parallel(sts: Obj) -> bool:
    return (sts.get("spec") or {}).get("podManagementPolicy") == "Parallel"


def update_strategy(sts: Obj) -> tuple[str, int]:
    """(type, partition)."""
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    kind = strategy.get("type") or "RollingUpdate"
    partition = int(((strategy.get("rollingUpdate") or {}).get("partition")) or 0)
    return kind, partition


def retention(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled)."""
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return policy.get("whenDeleted") or "Retain", policy.get("whenScaled") or "Retain"


def claim_templates(sts: Obj) -> list[Obj]:
    return list((sts.get("spec") or {}).get("volumeClaimTemplates") or [])


def claim_name(template: Obj, sts_name: str, ordinal: int) -> str:
    return f"{(template.get('metadata') or {}).get('name')}-{sts_name}-{ordinal}"


def owner_ref(obj: Obj, kind: str, api_version: str, *, controller: bool = True) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


def new_claim(sts: Obj, template: Obj, ordinal: int) -> Obj:
    md = sts["metadata"]
    tmd = template.get("metadata") or {}
    labels = dict(tmd.get("labels") or {})
    labels.update(((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    claim_md: Obj = {"name": claim_name(template, md["name"], ordinal), "namespace": md["namespace"],
                     "labels": labels}
    if tmd.get("annotations"):
        claim_md["annotations"] = dict(tmd["annotations"])
    if retention(sts)[0] == "Delete":
        claim_md["ownerReferences"] = [owner_ref(sts, "StatefulSet", "apps/v1")]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": claim_md,
            "spec": copy.deepcopy(template.get("spec") or {})}


def new_pod(sts: Obj, template: Obj, revision: str, ordinal: int) -> Obj:
    """The pod for one ordinal from a (revision's) pod template: stable name, hostname and claims."""
    md = sts["metadata"]
    name = f"{md['name']}-{ordinal}"
    tmd = template.get("metadata") or {}
    labels = dict(tmd.get("labels") or {})
    labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), REVISION_LABEL: revision})
    pod_md: Obj = {"name": name, "namespace": md["namespace"], "labels": labels,
                   "ownerReferences": [owner_ref(sts, "StatefulSet", "apps/v1")]}
    if tmd.get("annotations"):
        pod_md["annotations"] = dict(tmd["annotations"])
    if tmd.get("finalizers"):
        pod_md["finalizers"] = list(tmd["finalizers"])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    claims = claim_templates(sts)
    if claims:
        names = {(t.get("metadata") or {}).get("name") for t in claims}
        volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in names]
        for t in claims:
            volumes.append({"name": (t.get("metadata") or {}).get("name"),
                            "persistentVolumeClaim": {"claimName": claim_name(t, md["name"], ordinal)}})
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": spec}


# -- revisions -----------------------------------------------------------------------------------------
def fnv32(data: bytes) -> int:
    """FNV-1 32-bit, Go's fnv.New32 (the history package hashes with it, not FNV-1a)."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h * 0x01000193) & 0xFFFFFFFF) ^ byte
    return h


def revision_data(sts: Obj) -> Obj:
    template = copy.deepcopy((sts.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_hash(data: Obj, collision_count: int | None) -> str:
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32(raw)))


def revision_name(sts_name: str, hash_: str) -> str:
    return f"{sts_name[:223]}-{hash_}"


def new_revision(sts: Obj, data: Obj, number: int, collision_count: int | None, kind: str = "StatefulSet") -> Obj:
    hash_ = revision_hash(data, collision_count)
    tmd = ((sts.get("spec") or {}).get("template") or {}).get("metadata") or {}
    labels = dict(tmd.get("labels") or {})
    labels[HASH_LABEL] = hash_
    md: Obj = {"name": revision_name(sts["metadata"]["name"], hash_), "namespace": sts["metadata"]["namespace"],
               "labels": labels, "ownerReferences": [owner_ref(sts, kind, "apps/v1")]}
    if sts["metadata"].get("annotations"):
        md["annotations"] = dict(sts["metadata"]["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": md, "data": data,
            "revision": number}


def template_of(revision: Obj) -> Obj:
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revisions_to_truncate(revisions: list[Obj], live: set[str], limit: int) -> list[Obj]:
    """Oldest revisions no pod or status refers to, beyond revisionHistoryLimit."""
    history = [r for r in sorted(revisions, key=lambda r: r.get("revision", 0)) if r["metadata"]["name"] not in live]
    return history[:max(0, len(history) - limit)]


# -- the reconcile step ----------------------------------------------------------------------------------
@dataclass
class Plan:
    create: list[int] = field(default_factory=list)  # ordinals to (re)create: claims first, then the pod
    delete: list[Obj] = field(default_factory=list)  # pods to delete
    claims_for: list[int] = field(default_factory=list)  # ordinals of existing pods whose missing claims to create
    release_claims: list[Obj] = field(default_factory=list)  # condemned pods whose claims go with them
    wait_seconds: float | None = None  # look again then (minReadySeconds)


def revision_of(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL, "")


def _terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _running_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_pod_ready(pod)


def _healthy(pod: Obj, min_ready: int, at: datetime) -> bool:
    return _running_ready(pod) and not _terminating(pod) and is_available(pod, min_ready, at)


def split_pods(sts: Obj, pods: list[Obj]) -> tuple[dict[int, Obj], list[Obj]]:
    """(pods by ordinal within range, condemned pods by descending ordinal); unparsable names ignored."""
    start, count = start_ordinal(sts), spec_replicas(sts)
    replicas: dict[int, Obj] = {}
    condemned: list[tuple[int, Obj]] = []
    for pod in pods:
        parsed = parent_and_ordinal(pod["metadata"]["name"])
        if parsed is None or parsed[0] != sts["metadata"]["name"]:
            continue
        ordinal = parsed[1]
        if start <= ordinal < start + count:
            replicas[ordinal] = pod
        else:
            condemned.append((ordinal, pod))
    condemned.sort(key=lambda item: -item[0])
    return replicas, [pod for _, pod in condemned]


def plan(sts: Obj, pods: list[Obj], update_revision: str, missing_claims: set[int], stale_claims: set[int],
         at: datetime) -> Plan:
    """The next step. `missing_claims`/`stale_claims`: ordinals with a claim absent / being deleted."""
    out = Plan()
    if sts["metadata"].get("deletionTimestamp"):
        return out
    monotonic = not is_parallel(sts)
    min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
    start, count = start_ordinal(sts), spec_replicas(sts)
    replicas, condemned = split_pods(sts, pods)
    for ordinal in range(start, start + count):
        pod = replicas.get(ordinal)
        if pod is not None and (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            if not _terminating(pod):
                out.delete.append(pod)
            if monotonic:
                return out
            continue
        if pod is None:
            if ordinal in stale_claims:
                if monotonic:
                    return out
                continue
            out.create.append(ordinal)
            if monotonic:
                return out
            continue
        if ordinal in missing_claims and not _terminating(pod):
            out.claims_for.append(ordinal)
        if monotonic:
            if _terminating(pod) or not _running_ready(pod):
                return out
            if not is_available(pod, min_ready, at):
                out.wait_seconds = float(min_ready)
                return out
    # scale down: condemned pods from the highest ordinal
    if condemned:
        if monotonic:
            if any(_terminating(p) for p in condemned):
                return out
            first_unhealthy = next((p for p in [*[replicas[o] for o in sorted(replicas)], *condemned]
                                    if not _healthy(p, min_ready, at)), None)
            victim = condemned[0]
            if first_unhealthy is not None and first_unhealthy is not victim:
                return out
            out.delete.append(victim)
            out.release_claims.append(victim)
            return out
        doomed = [p for p in condemned if not _terminating(p)]
        out.delete.extend(doomed)
        out.release_claims.extend(doomed)
    kind, partition = update_strategy(sts)
    if kind != "RollingUpdate" or out.create or out.delete:
        return out
    for ordinal in range(start + count - 1, start + max(partition, 0) - 1, -1):
        pod = replicas.get(ordinal)
        if pod is None:
            continue
        if revision_of(pod) != update_revision and not _terminating(pod):
            out.delete.append(pod)
            return out
        if not _healthy(pod, min_ready, at):
            return out
    return out


def compute_status(sts: Obj, pods: list[Obj], current_revision: str, update_revision: str,
                   collision_count: int, at: datetime) -> Obj:
    min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
    replicas, condemned = split_pods(sts, pods)
    counted = [*replicas.values(), *condemned]
    status: Obj = {"observedGeneration": sts["metadata"].get("generation", 0),
                   "replicas": sum(1 for p in counted if (p.get("status") or {}).get("phase")),
                   "readyReplicas": sum(1 for p in counted if _running_ready(p)),
                   "availableReplicas": sum(1 for p in counted if _running_ready(p)
                                            and is_available(p, min_ready, at)),
                   "currentReplicas": sum(1 for p in counted if not _terminating(p)
                                          and revision_of(p) == current_revision),
                   "updatedReplicas": sum(1 for p in counted if not _terminating(p)
                                          and revision_of(p) == update_revision),
                   "currentRevision": current_revision, "updateRevision": update_revision,
                   "collisionCount": collision_count}
    kind, _ = update_strategy(sts)
    if kind == "RollingUpdate" and status["updatedReplicas"] == status["readyReplicas"] == status["replicas"] \
            == spec_replicas(sts):
        status["currentRevision"] = update_revision
        status["currentReplicas"] = status["updatedReplicas"]
    return status
