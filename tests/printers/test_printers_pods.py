"""Pod rows: READY, the aggregate STATUS (Init:, CrashLoopBackOff, Completed, Terminating ...), RESTARTS."""

from __future__ import annotations

import pytest

from nanokube.apiserver.printing import to_table

from .objects import NOW, ago, container_status, pod

READY_TRUE = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
              {"type": "PodScheduled", "status": "True"}]
NOT_INITIALIZED = [{"type": "Initialized", "status": "False"}, {"type": "PodScheduled", "status": "True"}]
WIDE_DEFAULT = ["10.244.0.5", "node-1", "<none>", "<none>"]


def waiting(reason: str) -> dict:
    return {"waiting": {"reason": reason}}


def terminated(exit_code: int, reason: str | None = None, signal: int | None = None) -> dict:
    t: dict = {"exitCode": exit_code, "startedAt": ago(minutes=30), "finishedAt": ago(minutes=20)}
    if reason:
        t["reason"] = reason
    if signal:
        t["signal"] = signal
    return {"terminated": t}


def last_terminated(minutes_ago: float) -> dict:
    return {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ago(minutes=minutes_ago + 1),
                           "finishedAt": ago(minutes=minutes_ago)}}


INIT_TWO = [{"name": "init-db", "image": "busybox"}, {"name": "init-cfg", "image": "busybox"}]

CASES = {
    "running": (
        pod(statuses=[container_status()], conditions=READY_TRUE),
        ["web-1", "1/1", "Running", "0", "12h", *WIDE_DEFAULT],
    ),
    "article pod": (
        pod("mariadb-deployment-68b7fcd4cd-7sc5l", statuses=[container_status()], conditions=READY_TRUE),
        ["mariadb-deployment-68b7fcd4cd-7sc5l", "1/1", "Running", "0", "12h", *WIDE_DEFAULT],
    ),
    "crash loop with restarts ago": (
        pod("crash", age={"minutes": 20}, statuses=[container_status(
            ready=False, restarts=3, state=waiting("CrashLoopBackOff"), last_state=last_terminated(5))]),
        ["crash", "0/1", "CrashLoopBackOff", "3 (5m ago)", "20m", *WIDE_DEFAULT],
    ),
    "restarts without a termination time": (
        pod("r", statuses=[container_status(restarts=2)], conditions=READY_TRUE),
        ["r", "1/1", "Running", "2", "12h", *WIDE_DEFAULT],
    ),
    "pending, creating": (
        pod("p", phase="Pending", ip=None, statuses=[container_status(ready=False, state=waiting("ContainerCreating"))]),
        ["p", "0/1", "ContainerCreating", "0", "12h", "<none>", "node-1", "<none>", "<none>"],
    ),
    "pending, unscheduled": (
        pod("u", phase="Pending", ip=None, node="", conditions=[
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]),
        ["u", "0/1", "Pending", "0", "12h", "<none>", "<none>", "<none>", "<none>"],
    ),
    "scheduling gated": (
        pod("g", phase="Pending", ip=None, node="", conditions=[
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
        ["g", "0/1", "SchedulingGated", "0", "12h", "<none>", "<none>", "<none>", "<none>"],
    ),
    "init running: Init:0/2": (
        pod("i", phase="Pending", init_containers=INIT_TWO, conditions=NOT_INITIALIZED,
            init_statuses=[container_status("init-db", ready=False), container_status(
                "init-cfg", ready=False, state=waiting("PodInitializing"))],
            statuses=[container_status(ready=False, state=waiting("PodInitializing"))]),
        ["i", "0/1", "Init:0/2", "0", "12h", *WIDE_DEFAULT],
    ),
    "second init running: Init:1/2": (
        pod("i2", phase="Pending", init_containers=INIT_TWO, conditions=NOT_INITIALIZED,
            init_statuses=[container_status("init-db", ready=False, state=terminated(0, "Completed")),
                           container_status("init-cfg", ready=False)],
            statuses=[container_status(ready=False, state=waiting("PodInitializing"))]),
        ["i2", "0/1", "Init:1/2", "0", "12h", *WIDE_DEFAULT],
    ),
    "init crash loop": (
        pod("ic", phase="Pending", init_containers=INIT_TWO, conditions=NOT_INITIALIZED,
            init_statuses=[container_status("init-db", ready=False, restarts=4, state=waiting("CrashLoopBackOff"),
                                            last_state=last_terminated(2))],
            statuses=[container_status(ready=False, restarts=7, state=waiting("PodInitializing"))]),
        ["ic", "0/1", "Init:CrashLoopBackOff", "4 (2m ago)", "12h", *WIDE_DEFAULT],
    ),
    "init error": (
        pod("ie", phase="Pending", init_containers=INIT_TWO, conditions=NOT_INITIALIZED,
            init_statuses=[container_status("init-db", ready=False, state=terminated(1, "Error"))]),
        ["ie", "0/1", "Init:Error", "0", "12h", *WIDE_DEFAULT],
    ),
    "init exit code": (
        pod("ix", phase="Pending", init_containers=INIT_TWO, conditions=NOT_INITIALIZED,
            init_statuses=[container_status("init-db", ready=False, state=terminated(2))]),
        ["ix", "0/1", "Init:ExitCode:2", "0", "12h", *WIDE_DEFAULT],
    ),
    "init signal": (
        pod("is", phase="Pending", init_containers=INIT_TWO, conditions=NOT_INITIALIZED,
            init_statuses=[container_status("init-db", ready=False, state=terminated(137, signal=9))]),
        ["is", "0/1", "Init:Signal:9", "0", "12h", *WIDE_DEFAULT],
    ),
    "completed": (
        pod("job-x", phase="Succeeded", conditions=[{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
            statuses=[container_status(ready=False, state=terminated(0, "Completed"))]),
        ["job-x", "0/1", "Completed", "0", "12h", *WIDE_DEFAULT],
    ),
    "failed, error": (
        pod("bad", phase="Failed", statuses=[container_status(ready=False, state=terminated(1, "Error"))]),
        ["bad", "0/1", "Error", "0", "12h", *WIDE_DEFAULT],
    ),
    "container exit code without reason": (
        pod("ec", statuses=[container_status(ready=False, state=terminated(3))]),
        ["ec", "0/1", "ExitCode:3", "0", "12h", *WIDE_DEFAULT],
    ),
    "container signal without reason": (
        pod("sg", statuses=[container_status(ready=False, state=terminated(143, signal=15))]),
        ["sg", "0/1", "Signal:15", "0", "12h", *WIDE_DEFAULT],
    ),
    "evicted": (
        pod("ev", phase="Failed", reason="Evicted", ip=None, statuses=[]),
        ["ev", "0/1", "Evicted", "0", "12h", "<none>", "node-1", "<none>", "<none>"],
    ),
    "completed container while another runs and pod ready": (
        pod("two", containers=2, conditions=READY_TRUE, statuses=[
            container_status("app", ready=False, state=terminated(0, "Completed")),
            container_status("c1")]),
        ["two", "1/2", "Running", "0", "12h", *WIDE_DEFAULT],
    ),
    "completed container while another runs, pod not ready": (
        pod("two-nr", containers=2, conditions=[{"type": "Ready", "status": "False"}], statuses=[
            container_status("app", ready=False, state=terminated(0, "Completed")),
            container_status("c1")]),
        ["two-nr", "1/2", "NotReady", "0", "12h", *WIDE_DEFAULT],
    ),
    "terminating": (
        pod("t", deleting=True, statuses=[container_status()], conditions=READY_TRUE),
        ["t", "1/1", "Terminating", "0", "12h", *WIDE_DEFAULT],
    ),
    "terminating after completion keeps Completed": (
        pod("tc", deleting=True, phase="Succeeded", statuses=[container_status(ready=False, state=terminated(0, "Completed"))]),
        ["tc", "0/1", "Completed", "0", "12h", *WIDE_DEFAULT],
    ),
    "node lost": (
        pod("nl", deleting=True, reason="NodeLost", phase="Running", statuses=[container_status()]),
        ["nl", "1/1", "Unknown", "0", "12h", *WIDE_DEFAULT],
    ),
    "sidecar counts toward ready and restarts": (
        pod("sc", conditions=READY_TRUE,
            init_containers=[{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            init_statuses=[container_status("proxy", restarts=1, started=True,
                                            last_state=last_terminated(90))],
            statuses=[container_status(restarts=2, last_state=last_terminated(30))]),
        ["sc", "2/2", "Running", "3 (30m ago)", "12h", *WIDE_DEFAULT],
    ),
    "readiness gates": (
        pod("rg", readiness_gates=["example.com/lb", "example.com/fw"], statuses=[container_status()],
            conditions=[*READY_TRUE, {"type": "example.com/lb", "status": "True"},
                        {"type": "example.com/fw", "status": "False"}]),
        ["rg", "1/1", "Running", "0", "12h", "10.244.0.5", "node-1", "<none>", "1/2"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_pod_cells(case: str) -> None:
    obj, want = CASES[case]
    table = to_table("pods", "", [obj], now=NOW)
    assert table["rows"][0]["cells"] == want


def test_nominated_node_and_legacy_pod_ip() -> None:
    obj = pod("n", ip=None, node="", phase="Pending")
    obj["status"]["nominatedNodeName"] = "node-2"
    obj["status"]["podIP"] = "10.244.1.9"  # only the legacy field: conversion fills podIPs from it
    cells = to_table("pods", "", [obj], now=NOW)["rows"][0]["cells"]
    assert cells[5:8] == ["10.244.1.9", "<none>", "node-2"]


def test_row_conditions_mark_finished_pods() -> None:
    done = pod("done", phase="Succeeded", statuses=[container_status(ready=False, state=terminated(0, "Completed"))])
    failed = pod("failed", phase="Failed", statuses=[container_status(ready=False, state=terminated(1, "Error"))])
    running = pod("running", statuses=[container_status()])
    rows = to_table("pods", "", [done, failed, running], now=NOW)["rows"]
    assert rows[0]["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                      "message": "The pod has completed successfully."}]
    assert rows[1]["conditions"] == [{"type": "Completed", "status": "True", "reason": "Failed",
                                      "message": "The pod failed."}]
    assert "conditions" not in rows[2]
