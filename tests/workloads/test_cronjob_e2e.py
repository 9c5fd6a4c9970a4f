"""CronJobs through a real loopback server with the real agent and kubectl. The controller's clock runs 60 times
faster (NANOKUBE_CRON_CLOCK_SPEED, a test-only knob), so an every-minute schedule fires about every second."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from tests.conftest import Server, start_server
from tests.polling import eventually

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    old = os.environ.get("NANOKUBE_CRON_CLOCK_SPEED")
    os.environ["NANOKUBE_CRON_CLOCK_SPEED"] = "60"
    try:
        srv = start_server("--network", "loopback", "--pod-cidr", "127.235.0.0/16", "--service-cidr", "127.234.0.0/16")
    finally:
        if old is None:
            os.environ.pop("NANOKUBE_CRON_CLOCK_SPEED")
        else:
            os.environ["NANOKUBE_CRON_CLOCK_SPEED"] = old
    try:
        yield srv
    finally:
        srv.stop()


def get(server: Server, *what: str) -> dict:
    return json.loads(server.kubectl("get", *what, "-o", "json").stdout)


def cronjob(name: str, script: str, **spec: object) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "* * * * *", **spec, "jobTemplate": {"metadata": {"labels": {"cron": name}}, "spec": {
                "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                                      "containers": [{"name": "main", "image": "busybox",
                                                      "command": ["sh", "-c", script]}]}}}}}}


def jobs_of(server: Server, name: str) -> list[dict]:
    return get(server, "jobs", "-l", f"cron={name}")["items"]


def events(server: Server, name: str, reason: str) -> list[dict]:
    return [e for e in get(server, "events", "--field-selector", f"involvedObject.name={name}")["items"]
            if e["reason"] == reason]


def test_every_minute_creates_jobs_and_keeps_the_history_limit(server):
    server.apply(cronjob("tick", "true", successfulJobsHistoryLimit=2))
    eventually(lambda: len(events(server, "tick", "SuccessfulCreate")) >= 4, timeout=120)
    server.kubectl("patch", "cronjob/tick", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    created = {e["message"].removeprefix("Created job ") for e in events(server, "tick", "SuccessfulCreate")}
    assert all(n.startswith("tick-") and n[5:].isdigit() for n in created)
    kept = eventually(lambda: (j := jobs_of(server, "tick")) and len(j) == 2 and
                      all(any(c["type"] == "Complete" for c in x["status"].get("conditions") or []) for x in j) and j,
                      timeout=120)
    assert {j["metadata"]["name"] for j in kept} <= created
    assert all(j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] for j in kept)
    status = eventually(lambda: (s := get(server, "cronjob", "tick")["status"]).get("lastSuccessfulTime") and
                        not s.get("active") and s, timeout=60)
    assert status["lastScheduleTime"]
    assert events(server, "tick", "SawCompletedJob")
    row = server.kubectl("get", "cronjob", "tick").stdout.splitlines()[1].split()
    assert row[:4] == ["tick", "*", "*", "*"] and "True" in row


def test_forbid_keeps_one_job_running(server):
    server.apply(cronjob("slow", "sleep 30", concurrencyPolicy="Forbid"))
    eventually(lambda: events(server, "slow", "JobAlreadyActive"), timeout=120)
    assert len(jobs_of(server, "slow")) == 1
    assert len(get(server, "cronjob", "slow")["status"]["active"]) == 1
    server.kubectl("delete", "cronjob", "slow")


def test_create_job_from_cronjob(server):
    server.apply(cronjob("manual", "true", suspend=True))
    server.kubectl("create", "job", "by-hand", "--from=cronjob/manual")
    job = get(server, "job", "by-hand")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    server.kubectl("wait", "--for=condition=complete", "job/by-hand", "--timeout=60s")


def test_unknown_time_zone_is_refused_by_validation(server):
    proc = server.kubectl("apply", "-f", "-", input=json.dumps(cronjob("mars", "true", timeZone="Mars/Olympus")),
                          check=False)
    assert proc.returncode == 1
    assert 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus' in proc.stderr


def test_time_zone_schedules_in_that_zone(server):
    server.apply(cronjob("berlin", "true", timeZone="Europe/Berlin", suspend=False))
    eventually(lambda: events(server, "berlin", "SuccessfulCreate"), timeout=60)
    server.kubectl("delete", "cronjob", "berlin")


def test_replace_deletes_the_running_job_for_the_next(server):
    server.apply(cronjob("swap", "sleep 60", concurrencyPolicy="Replace"))
    deleted = eventually(lambda: events(server, "swap", "SuccessfulDelete"), timeout=120, what="a replaced job")
    gone = deleted[0]["message"].removeprefix("Deleted job ")
    eventually(lambda: gone not in {j["metadata"]["name"] for j in jobs_of(server, "swap")}, timeout=60)
    eventually(lambda: len(get(server, "cronjob", "swap")["status"].get("active") or []) == 1, timeout=60)
    server.kubectl("patch", "cronjob/swap", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    server.kubectl("delete", "cronjob", "swap")
