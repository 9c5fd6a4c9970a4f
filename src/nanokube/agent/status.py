"""Pod status as kubelet writes it: phase, conditions and container statuses from the runtime's view."""

from __future__ import annotations

from nanokube.agent.container import ContainerRun
from nanokube.api.meta import Obj, rfc3339


def pod_phase(restart_policy: str, init_states: list[Obj], states: list[Obj], init_done: bool,
              init_failed_for_good: bool) -> str:
    """kubelet getPhase over container statuses (dicts with 'state' and 'lastState')."""
    if init_failed_for_good:
        return "Failed"
    if not init_done:
        return "Pending"
    running = stopped = succeeded = waiting = 0
    for cs in states:
        state = cs["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "terminated" in (cs.get("lastState") or {}):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def condition(ctype: str, ok: bool, since: str, reason: str | None = None, message: str | None = None) -> Obj:
    cond: Obj = {"type": ctype, "status": "True" if ok else "False", "lastProbeTime": None,
                 "lastTransitionTime": since}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def unready_message(kind: str, names: list[str]) -> str:
    return f"containers with {kind} status: [{' '.join(names)}]"


def container_status(c: ContainerRun, *, pending_init: bool = False, creating: bool = False) -> Obj:
    """One containerStatuses entry. `creating`: the pod's sandbox or volumes are not ready yet."""
    state = c.state
    if pending_init and "waiting" in state and state["waiting"].get("reason") == "ContainerCreating":
        state = {"waiting": {"reason": "PodInitializing"}}
    if creating and "waiting" in state and c.runs == 0:
        state = {"waiting": {"reason": "ContainerCreating"}}
    status = {"name": c.name, "state": state, "lastState": c.last_state, "ready": bool(c.ready and c.running),
              "restartCount": c.restart_count, "image": c.spec.get("image", ""), "imageID": c.image_id,
              "started": bool(c.started and c.running)}
    if c.container_id:
        status["containerID"] = c.container_id
    return status


def init_failed_for_good(pod: Obj, inits: list[ContainerRun]) -> bool:
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if policy != "Never":
        return False
    return any(not c.sidecar and c.last_exit is not None and c.last_exit.code != 0 and not c.running for c in inits)


def current_phase(pod: Obj, inits: list[ContainerRun], mains: list[ContainerRun]) -> str:
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    init_done = all(c.init_complete for c in inits)
    return pod_phase(policy, [], [container_status(c) for c in mains], init_done, init_failed_for_good(pod, inits))


class StatusBuilder:
    """Builds one pod's status; remembers since when each condition has held (lastTransitionTime)."""

    def __init__(self) -> None:
        self.start_time = rfc3339()
        self._cond_since: dict[str, tuple[bool, str]] = {}

    def _since(self, ctype: str, ok: bool) -> str:
        prev = self._cond_since.get(ctype)
        if prev is None or prev[0] != ok:
            prev = (ok, rfc3339())
            self._cond_since[ctype] = prev
        return prev[1]

    def build(self, pod: Obj, inits: list[ContainerRun], mains: list[ContainerRun], *, node_ip: str, pod_ip: str,
              sandbox_ready: bool, creating: bool, final: bool) -> Obj:
        spec = pod.get("spec") or {}
        old = pod.get("status") or {}
        init_done = all(c.init_complete for c in inits)
        init_statuses = [container_status(c, creating=creating) for c in inits]
        statuses = sorted((container_status(c, pending_init=not init_done, creating=creating) for c in mains),
                          key=lambda s: s["name"])
        if final:
            phase = "Succeeded" if all(
                (s["state"].get("terminated") or {}).get("exitCode", 1) == 0 for s in statuses) else "Failed"
        else:
            phase = current_phase(pod, inits, mains)
        unready = [s["name"] for s in statuses if not s["ready"]]
        incomplete = [c.name for c in inits if not c.init_complete]
        completed = (phase in ("Succeeded", "Failed") and final) or phase == "Succeeded"
        conds = [condition("PodReadyToStartContainers", sandbox_ready, self._since("PodReadyToStartContainers",
                                                                                  sandbox_ready))]
        conds.append(condition("Initialized", not incomplete, self._since("Initialized", not incomplete),
                               None if not incomplete else "ContainersNotInitialized",
                               None if not incomplete else unready_message("incomplete", incomplete)))
        containers_ready = not unready and not completed
        gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
        gate_missing = [g for g in gates if not any(
            x.get("type") == g and x.get("status") == "True" for x in old.get("conditions") or [])]
        ready = containers_ready and not gate_missing
        if completed:
            reason, message = "PodCompleted", None
        elif unready:
            reason, message = "ContainersNotReady", unready_message("unready", unready)
        else:
            reason, message = None, None
        if ready or not gate_missing or reason:
            ready_reason, ready_message = (None, None) if ready else (reason, message)
        else:
            ready_reason = "ReadinessGatesNotReady"
            ready_message = f"corresponding condition of pod readiness gate \"{gate_missing[0]}\" does not exist."
        conds.append(condition("Ready", ready, self._since("Ready", ready), ready_reason, ready_message))
        conds.append(condition("ContainersReady", containers_ready, self._since("ContainersReady", containers_ready),
                               None if containers_ready else reason, None if containers_ready else message))
        ours = {c["type"] for c in conds}
        scheduled = next((c for c in old.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        conds.append(scheduled or condition("PodScheduled", True, self.start_time))
        ours.add("PodScheduled")
        conds.extend(c for c in old.get("conditions") or [] if c.get("type") not in ours)
        status: Obj = {"phase": phase, "conditions": conds, "hostIP": node_ip, "hostIPs": [{"ip": node_ip}],
                       "startTime": old.get("startTime") or self.start_time, "containerStatuses": statuses}
        if pod_ip:
            status["podIP"] = pod_ip
            status["podIPs"] = [{"ip": pod_ip}]
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        if old.get("qosClass"):
            status["qosClass"] = old["qosClass"]
        return status
