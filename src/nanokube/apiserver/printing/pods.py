"""Pods (printPod): READY, the aggregate STATUS kubectl users read, RESTARTS with the last restart's age."""

from __future__ import annotations

from datetime import datetime

from nanokube.apiserver.printing.base import (
    Cell,
    Column,
    Obj,
    Printer,
    age_column,
    age_of,
    as_int,
    doc,
    is_deleting,
    name_column,
    name_of,
    spec,
    status,
    wide,
)
from nanokube.apiserver.printing.duration import elapsed_seconds, human_duration, parse_timestamp

NODE_UNREACHABLE_REASON = "NodeLost"

_SUCCEEDED = [{"type": "Completed", "status": "True", "reason": "Succeeded",
               "message": "The pod has completed successfully."}]
_FAILED = [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]


def _is_restartable_init_container(container: Obj | None) -> bool:
    return container is not None and container.get("restartPolicy") == "Always"


def _condition_true(pod_status: Obj, ctype: str) -> bool:
    """The first condition of this type decides (isPodInitializedConditionTrue)."""
    for condition in pod_status.get("conditions") or []:
        if condition.get("type") == ctype:
            return condition.get("status") == "True"
    return False


def _has_ready_condition(pod_status: Obj) -> bool:
    """hasPodReadyCondition: any Ready condition with status True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod_status.get("conditions") or [])


class _RestartTracker:
    """Sums restart counts and remembers the latest lastState.terminated.finishedAt."""

    def __init__(self) -> None:
        self.count = 0
        self.last: datetime | None = None

    def add(self, container_status: Obj) -> None:
        self.count += as_int(container_status.get("restartCount"))
        terminated = (container_status.get("lastState") or {}).get("terminated")
        if terminated is not None:
            finished = parse_timestamp(terminated.get("finishedAt"))
            if finished is not None and (self.last is None or self.last < finished):
                self.last = finished


def _terminated_reason(terminated: Obj, prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + terminated["reason"]
    if as_int(terminated.get("signal")) != 0:
        return f"{prefix}Signal:{as_int(terminated.get('signal'))}"
    return f"{prefix}ExitCode:{as_int(terminated.get('exitCode'))}"


def pod_status_and_counts(pod: Obj, now: datetime) -> tuple[str, str, str]:
    """(READY, STATUS, RESTARTS) exactly as printPod computes them."""
    pod_spec, pod_status = spec(pod), status(pod)
    phase = pod_status.get("phase") or ""
    reason = pod_status.get("reason") or phase
    for condition in pod_status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in pod_spec.get("initContainers") or []}
    total = len(pod_spec.get("containers") or []) + sum(
        1 for c in pod_spec.get("initContainers") or [] if _is_restartable_init_container(c)
    )
    ready = 0
    all_restarts = _RestartTracker()
    sidecar_restarts = _RestartTracker()

    initializing = False
    init_statuses = pod_status.get("initContainerStatuses") or []
    for index, cs in enumerate(init_statuses):
        all_restarts.add(cs)
        restartable = _is_restartable_init_container(init_specs.get(cs.get("name")))
        if restartable:
            sidecar_restarts.add(cs)
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and as_int(terminated.get("exitCode")) == 0:
            continue
        if restartable and cs.get("started") is True:
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(pod_spec.get('initContainers') or [])}"
        initializing = True
        break

    restarts = all_restarts
    if not initializing or _condition_true(pod_status, "Initialized"):
        restarts = sidecar_restarts
        has_running = False
        for cs in reversed(pod_status.get("containerStatuses") or []):
            restarts.add(cs)
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A pod whose last container completed but another still runs is shown by readiness instead.
        if reason == "Completed" and has_running:
            reason = "Running" if _has_ready_condition(pod_status) else "NotReady"

    if is_deleting(pod) and pod_status.get("reason") == NODE_UNREACHABLE_REASON:
        reason = "Unknown"
    elif is_deleting(pod) and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts.count)
    if restarts.count != 0 and restarts.last is not None:
        restarts_text = f"{restarts.count} ({human_duration(elapsed_seconds(restarts.last, now))} ago)"
    return f"{ready}/{total}", reason, restarts_text


def _readiness_gates(pod: Obj) -> str:
    gates = spec(pod).get("readinessGates") or []
    if not gates:
        return "<none>"
    conditions = status(pod).get("conditions") or []
    true_count = 0
    for gate in gates:
        for condition in conditions:
            if condition.get("type") == gate.get("conditionType"):
                if condition.get("status") == "True":
                    true_count += 1
                break
    return f"{true_count}/{len(gates)}"


def _pod_row(pod: Obj, now: datetime) -> list[Cell]:
    ready, reason, restarts = pod_status_and_counts(pod, now)
    pod_status = status(pod)
    # v1 -> internal conversion fills podIPs from the legacy podIP field.
    pod_ips = pod_status.get("podIPs") or ([{"ip": pod_status["podIP"]}] if pod_status.get("podIP") else [])
    return [
        name_of(pod),
        ready,
        reason,
        restarts,
        age_of(pod, now),
        (pod_ips[0].get("ip") if pod_ips else "") or "<none>",
        spec(pod).get("nodeName") or "<none>",
        pod_status.get("nominatedNodeName") or "<none>",
        _readiness_gates(pod),
    ]


def _pod_conditions(pod: Obj) -> list[Obj]:
    phase = status(pod).get("phase")
    if phase == "Succeeded":
        return _SUCCEEDED
    if phase == "Failed":
        return _FAILED
    return []


PODS = Printer(
    (
        name_column(),
        Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", description="The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            description="The number of times the containers in this pod have been restarted and when the last "
            "container in this pod has restarted.",
        ),
        age_column(),
        wide("IP", doc("PodStatus.podIP")),
        wide("Node", doc("PodSpec.nodeName")),
        wide("Nominated Node", doc("PodStatus.nominatedNodeName")),
        wide("Readiness Gates", doc("PodSpec.readinessGates")),
    ),
    _pod_row,
    _pod_conditions,
)
