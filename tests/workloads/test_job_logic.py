"""job_logic: wanted pods, index sets, back-off and the pods a Job creates."""

from __future__ import annotations

from nanokube.controllers import job_logic as logic


def job(**spec: object) -> dict:
    return {"metadata": {"name": "j", "namespace": "default", "uid": "u"},
            "spec": {"template": {"metadata": {"labels": {"job-name": "j"}},
                                  "spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}},
                     **spec}}


def test_want_active_follows_completions_and_parallelism():
    assert logic.want_active(job(completions=5, parallelism=2), 0, 0) == 2
    assert logic.want_active(job(completions=5, parallelism=2), 4, 1) == 1
    assert logic.want_active(job(parallelism=3), 0, 0) == 3  # work queue: until one succeeds
    assert logic.want_active(job(parallelism=3), 1, 2) == 2


def test_completed_indexes_round_trip_as_compressed_ranges():
    assert logic.format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert logic.parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert logic.parse_indexes("") == set()


def test_backoff_doubles_from_ten_seconds_capped_at_ten_minutes():
    assert [logic.backoff_delay(n) for n in (0, 1, 2, 3)] == [0.0, 10.0, 20.0, 40.0]
    assert logic.backoff_delay(20) == 600.0


def test_indexed_pod_carries_index_env_hostname_and_tracking_finalizer():
    pod = logic.new_pod(job(completionMode="Indexed", completions=3), 2)
    md = pod["metadata"]
    assert md["generateName"] == "j-2-" and md["labels"][logic.INDEX_KEY] == md["annotations"][logic.INDEX_KEY] == "2"
    assert md["finalizers"] == [logic.TRACKING_FINALIZER] and pod["spec"]["hostname"] == "j-2"
    env = pod["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "A", "value": "1"} and env[1]["name"] == "JOB_COMPLETION_INDEX"
    assert logic.missing_indexes(job(completions=4), {0}, [pod], 5) == [1, 3]


def test_on_failure_restarts_count_towards_backoff_limit():
    j = job(backoffLimit=2)
    j["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    pod = {"status": {"containerStatuses": [{"restartCount": 2}]}}
    assert logic.restarts_past_limit(j, [pod])
    j["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert not logic.restarts_past_limit(j, [pod])
