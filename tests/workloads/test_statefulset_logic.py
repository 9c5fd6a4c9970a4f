"""statefulset_logic: identities, revision hashing, and the next step of a reconcile."""

from __future__ import annotations

from datetime import UTC, datetime

from nanokube.controllers import statefulset_logic as logic

AT = datetime(2026, 1, 1, tzinfo=UTC)


def sts(replicas: int = 3, **spec: object) -> dict:
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1},
            "spec": {"replicas": replicas, "serviceName": "svc", "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}},
                     **spec}}


def pod(ordinal: int, *, ready: bool = True, rev: str = "r1", phase: str = "Running", deleting: bool = False) -> dict:
    md: dict = {"name": f"web-{ordinal}", "uid": f"p{ordinal}", "labels": {"controller-revision-hash": rev}}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": md, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}


def test_ordinal_parsing_and_claim_names():
    assert logic.parent_and_ordinal("db-12") == ("db", 12)
    assert logic.parent_and_ordinal("my-db-x") is None
    assert logic.claim_name({"metadata": {"name": "data"}}, "db", 2) == "data-db-2"


def test_fnv1_matches_go_and_revision_hash_changes_with_collision_count():
    assert logic.fnv32(b"") == 0x811C9DC5 and logic.fnv32(b"a") == 0x050C5D7E  # Go's fnv.New32 test vectors
    data = logic.revision_data(sts())
    assert data["spec"]["template"]["$patch"] == "replace"
    assert logic.revision_hash(data, None) != logic.revision_hash(data, 1)


def test_ordered_ready_waits_for_each_pod_parallel_does_not():
    step = logic.plan(sts(), [pod(0, ready=False)], "r1", set(), set(), AT)
    assert step.create == [] and step.delete == []
    assert logic.plan(sts(), [pod(0)], "r1", set(), set(), AT).create == [1]
    assert logic.plan(sts(podManagementPolicy="Parallel"), [], "r1", set(), set(), AT).create == [0, 1, 2]


def test_scale_down_deletes_highest_ordinal_first_and_failed_pods_are_replaced():
    step = logic.plan(sts(1), [pod(0), pod(1), pod(2)], "r1", set(), set(), AT)
    assert [p["metadata"]["name"] for p in step.delete] == ["web-2"]
    step = logic.plan(sts(2), [pod(0, phase="Failed"), pod(1)], "r1", set(), set(), AT)
    assert [p["metadata"]["name"] for p in step.delete] == ["web-0"]


def test_stale_claim_holds_the_pod_back():
    assert logic.plan(sts(1), [], "r1", set(), {0}, AT).create == []


def test_rolling_update_respects_partition_and_on_delete():
    partitioned = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    step = logic.plan(partitioned, [pod(0), pod(1), pod(2)], "r2", set(), set(), AT)
    assert [p["metadata"]["name"] for p in step.delete] == ["web-2"]
    step = logic.plan(partitioned, [pod(0), pod(1), pod(2, rev="r2")], "r2", set(), set(), AT)
    assert step.delete == []
    assert logic.plan(sts(updateStrategy={"type": "OnDelete"}), [pod(0), pod(1), pod(2)], "r2", set(), set(),
                      AT).delete == []


def test_status_promotes_current_revision_once_all_updated():
    status = logic.compute_status(sts(), [pod(0, rev="r2"), pod(1, rev="r2"), pod(2, rev="r2")], "r1", "r2", 0, AT)
    assert status["currentRevision"] == "r2" and status["currentReplicas"] == 3
    status = logic.compute_status(sts(), [pod(0), pod(1), pod(2, rev="r2")], "r1", "r2", 0, AT)
    assert (status["currentRevision"], status["currentReplicas"], status["updatedReplicas"]) == ("r1", 2, 1)


def test_new_pod_has_hostname_subdomain_and_claim_volumes():
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {}}])
    p = logic.new_pod(s, s["spec"]["template"], "r1", 4)
    assert p["metadata"]["name"] == "web-4" and p["spec"]["hostname"] == "web-4" and p["spec"]["subdomain"] == "svc"
    assert p["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-4"}}]
