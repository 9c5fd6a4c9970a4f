"""Pod status as kubelet writes it: phase, conditions and container statuses from the runtime's view."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


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
