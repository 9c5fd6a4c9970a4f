"""What a Job wants, as pure functions (pkg/controller/job/job_controller.go, indexed_job_utils.go,
backoff_utils.go): how many pods should run, which indexes are missing, whether the Job has failed or
succeeded, its conditions as v1.32 writes them, and the pod-failure back-off."""

from __future__ import annotations

import copy
from datetime import datetime

from nanokube.api.meta import Obj, is_pod_ready, parse_time, rfc3339

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
BACKOFF_BASE = 10.0
BACKOFF_MAX = 600.0  # MaxJobPodFailureBackOff in the code (the docs say 6 minutes)

COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


def spec_of(job: Obj) -> Obj:
    return job.get("spec") or {}


def completions(job: Obj) -> int | None:
    value = spec_of(job).get("completions")
    return None if value is None else int(value)


def parallelism(job: Obj) -> int:
    value = spec_of(job).get("parallelism")
    return 1 if value is None else int(value)


def backoff_limit(job: Obj) -> int:
    value = spec_of(job).get("backoffLimit")
    return 6 if value is None else int(value)


def is_indexed(job: Obj) -> bool:
    return spec_of(job).get("completionMode") == "Indexed"


def condition(job: Obj, ctype: str) -> Obj | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return cond
    return None


def is_finished(job: Obj) -> bool:
    return condition(job, "Complete") is not None or condition(job, "Failed") is not None


def finished_at(job: Obj) -> datetime | None:
    cond = condition(job, "Complete") or condition(job, "Failed")
    return parse_time(cond.get("lastTransitionTime")) if cond else None


def new_condition(ctype: str, reason: str, message: str, at: datetime, status: str = "True") -> Obj:
    stamp = rfc3339(at)
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastProbeTime": stamp, "lastTransitionTime": stamp}


def set_condition(status: Obj, cond: Obj) -> bool:
    """Adds or updates a condition; returns whether anything changed."""
    conditions = status.setdefault("conditions", [])
    for i, old in enumerate(conditions):
        if old.get("type") == cond["type"]:
            if old.get("status") == cond["status"] and old.get("reason") == cond["reason"]:
                return False
            conditions[i] = cond
            return True
    conditions.append(cond)
    return True


def pod_index(pod: Obj) -> int | None:
    md = pod.get("metadata") or {}
    text = (md.get("annotations") or {}).get(INDEX_KEY) or (md.get("labels") or {}).get(INDEX_KEY)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_indexes(text: str | None) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def format_indexes(indexes: set[int]) -> str:
    """Compressed ranges, as status.completedIndexes: "0-2,5"."""
    parts: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def want_active(job: Obj, succeeded: int, active: int) -> int:
    total = completions(job)
    if total is None:
        return active if succeeded > 0 else parallelism(job)
    return max(0, min(total - succeeded, parallelism(job)))


def restarts_past_limit(job: Obj, active: list[Obj]) -> bool:
    """restartPolicy OnFailure: the containers' restarts count towards backoffLimit."""
    template_spec = (spec_of(job).get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    total = sum(int(s.get("restartCount") or 0) for pod in active
                for s in [*((pod.get("status") or {}).get("initContainerStatuses") or []),
                          *((pod.get("status") or {}).get("containerStatuses") or [])])
    limit = backoff_limit(job)
    return total > 0 if limit == 0 else total >= limit


def backoff_delay(failures_since_success: int) -> float:
    if failures_since_success <= 0:
        return 0.0
    return min(BACKOFF_BASE * 2 ** (failures_since_success - 1), BACKOFF_MAX)


def finish_time(pod: Obj) -> datetime | None:
    latest = None
    for s in (pod.get("status") or {}).get("containerStatuses") or []:
        at = parse_time(((s.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if at is not None and (latest is None or at > latest):
            latest = at
    return latest or parse_time((pod.get("metadata") or {}).get("deletionTimestamp")) or \
        parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def ready_count(pods: list[Obj]) -> int:
    return sum(1 for p in pods if is_pod_ready(p))


def new_pod(job: Obj, index: int | None) -> Obj:
    md = job["metadata"]
    template = copy.deepcopy(spec_of(job).get("template") or {})
    tmd = template.get("metadata") or {}
    prefix = f"{md['name']}-" if index is None else f"{md['name']}-{index}-"
    pod_md: Obj = {"generateName": prefix, "namespace": md["namespace"], "labels": dict(tmd.get("labels") or {}),
                   "annotations": dict(tmd.get("annotations") or {}),
                   "finalizers": [*(tmd.get("finalizers") or []), TRACKING_FINALIZER],
                   "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": md["name"], "uid": md["uid"],
                                        "controller": True, "blockOwnerDeletion": True}]}
    spec = template.get("spec") or {}
    if index is not None:
        pod_md["annotations"][INDEX_KEY] = str(index)
        pod_md["labels"][INDEX_KEY] = str(index)
        spec.setdefault("hostname", f"{md['name']}-{index}")
        env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}}
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            c["env"] = [*(e for e in c.get("env") or [] if e.get("name") != "JOB_COMPLETION_INDEX"), env]
    if not pod_md["annotations"]:
        del pod_md["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": spec}


def missing_indexes(job: Obj, succeeded: set[int], active: list[Obj], count: int) -> list[int]:
    """The lowest `count` indexes neither succeeded nor running."""
    total = completions(job) or 0
    running = {i for p in active if (i := pod_index(p)) is not None}
    out = []
    for i in range(total):
        if len(out) >= count:
            break
        if i not in succeeded and i not in running:
            out.append(i)
    return out
