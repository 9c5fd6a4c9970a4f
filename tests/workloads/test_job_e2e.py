"""Jobs through a real loopback server with the real agent (busybox = the host's sh) and the real kubectl."""

from __future__ import annotations

import json
import time

import pytest
from tests.conftest import Server, module_server
from tests.polling import eventually

pytestmark = pytest.mark.timeout(300)

server = module_server("--network", "loopback", "--pod-cidr", "127.233.0.0/16", "--service-cidr", "127.232.0.0/16")


def get(server: Server, *what: str) -> dict:
    return json.loads(server.kubectl("get", *what, "-o", "json").stdout)


def job(name: str, script: str, **spec: object) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2,
                                           "containers": [{"name": "main", "image": "busybox",
                                                           "command": ["sh", "-c", script]}]}}, **spec}}


def conditions(obj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}


def test_completions_five_parallelism_two(server):
    server.apply(job("five", "sleep 0.5", completions=5, parallelism=2))
    most = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = get(server, "job", "five").get("status", {})
        most = max(most, status.get("active", 0))
        assert status.get("active", 0) <= 2
        if "Complete" in conditions(get(server, "job", "five")):
            break
        time.sleep(0.2)
    server.kubectl("wait", "--for=condition=complete", "job/five", "--timeout=60s")
    done = get(server, "job", "five")
    status, conds = done["status"], conditions(done)
    assert status["succeeded"] == 5 and status.get("failed", 0) == 0 and status["active"] == 0
    assert conds["SuccessCriteriaMet"]["reason"] == conds["Complete"]["reason"] == "CompletionsReached"
    assert conds["Complete"]["message"] == "Reached expected number of succeeded pods"
    assert status["completionTime"] and status["startTime"] and most == 2
    pods = get(server, "pods", "-l", "batch.kubernetes.io/job-name=five")["items"]
    assert len(pods) == 5 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert all("batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or []) for p in pods)
    row = server.kubectl("get", "job", "five").stdout.splitlines()[1].split()
    assert row[:3] == ["five", "Complete", "5/5"]


def test_failing_job_stops_at_backoff_limit(server):
    server.apply(job("fails", "exit 3", backoffLimit=1))
    server.kubectl("wait", "--for=condition=failed", "job/fails", "--timeout=90s")
    failed = get(server, "job", "fails")
    conds = conditions(failed)
    assert conds["Failed"]["reason"] == conds["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert conds["Failed"]["message"] == "Job has reached the specified backoff limit"
    assert failed["status"]["failed"] == 2 and failed["status"].get("succeeded", 0) == 0
    pods = get(server, "pods", "-l", "batch.kubernetes.io/job-name=fails")["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    events = server.kubectl("get", "events", "--field-selector", "involvedObject.name=fails").stdout
    assert "BackoffLimitExceeded" in events


def test_indexed_job_gives_each_pod_its_index(server):
    server.apply(job("idx", 'echo "index $JOB_COMPLETION_INDEX"; test -n "$JOB_COMPLETION_INDEX"', completions=3,
                     parallelism=3, completionMode="Indexed"))
    server.kubectl("wait", "--for=condition=complete", "job/idx", "--timeout=60s")
    done = get(server, "job", "idx")
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    pods = get(server, "pods", "-l", "batch.kubernetes.io/job-name=idx")["items"]
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1", "2"]
    assert {p["spec"]["hostname"] for p in pods} == {"idx-0", "idx-1", "idx-2"}
    for pod in pods:
        index = pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
        assert server.kubectl("logs", pod["metadata"]["name"]).stdout.strip() == f"index {index}"


def test_active_deadline_and_ttl_after_finished(server):
    server.apply(job("slow", "sleep 60", activeDeadlineSeconds=2, ttlSecondsAfterFinished=3))
    server.kubectl("wait", "--for=condition=failed", "job/slow", "--timeout=60s")
    assert conditions(get(server, "job", "slow"))["Failed"]["reason"] == "DeadlineExceeded"
    eventually(lambda: "slow" not in server.kubectl("get", "jobs", "-o", "name").stdout, timeout=60)
    eventually(lambda: not get(server, "pods", "-l", "batch.kubernetes.io/job-name=slow")["items"], timeout=60)


def test_on_failure_restarts_count_towards_the_backoff_limit(server):
    """restartPolicy OnFailure: the container restarts in place; its restarts count towards backoffLimit."""
    body = job("restarts", "exit 3", backoffLimit=2)
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    server.apply(body)

    def restarted() -> list[str]:
        pods = get(server, "pods", "-l", "batch.kubernetes.io/job-name=restarts")["items"]
        return [p["metadata"]["name"] for p in pods
                if (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1]
    names = eventually(restarted, 120, what="the job's pod restarted in place")
    server.kubectl("wait", "--for=condition=failed", "job/restarts", "--timeout=180s", timeout=200)
    conds = conditions(get(server, "job", "restarts"))
    assert conds["Failed"]["reason"] == "BackoffLimitExceeded"
    assert get(server, "job", "restarts")["status"].get("failed", 0) <= 1
    assert len(names) == 1  # one pod, restarted in place


def test_quick_never_restart_pods_run_once(server):
    """A container that exits at once under restartPolicy Never runs exactly once: its exit is recorded before
    the pod's next sync can mistake it for a container that never ran (which restarted it in a loop)."""
    for n in range(4):
        server.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"once-{n}", "labels": {"once": "run"}},
                      "spec": {"restartPolicy": "Never",
                               "containers": [{"name": "main", "image": "busybox", "command": ["echo", "hi"]}]}})

    def finished() -> list[dict]:
        pods = get(server, "pods", "-l", "once=run")["items"]
        return pods if len(pods) == 4 and all(p["status"].get("phase") == "Succeeded" for p in pods) else []
    pods = eventually(finished, 60, what="four Succeeded pods")
    statuses = [p["status"]["containerStatuses"][0] for p in pods]
    assert [s["restartCount"] for s in statuses] == [0, 0, 0, 0]
    assert all(s["state"]["terminated"]["reason"] == "Completed" and not s["lastState"] for s in statuses)
    assert all(server.kubectl("logs", p["metadata"]["name"]).stdout == "hi\n" for p in pods)
