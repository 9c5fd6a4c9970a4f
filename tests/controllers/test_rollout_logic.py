"""Deployment arithmetic: template hash, fenceposts, rolling steps, proportional scaling, status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nanokube.controllers import rollout as ro


def deployment(replicas=10, surge="25%", unavailable="25%", generation=1, strategy="RollingUpdate", status=None):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}},
            "strategy": {"type": strategy}, "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": generation},
            "spec": spec, "status": status or {}}


def rs(name, replicas, available=None, created="2024-01-01T00:00:00Z", revision=None, **ann):
    annotations = dict(ann)
    if revision is not None:
        annotations[ro.REVISION] = str(revision)
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": replicas if available is None else available,
                       "readyReplicas": replicas if available is None else available}}


def test_hash_is_fnv32a_safe_encoded_and_ignores_nothing_but_empties():
    assert ro.fnv32a(b"") == 0x811C9DC5
    assert ro.fnv32a(b"a") == 0xE40C292C  # published FNV-1a test vector
    assert ro.safe_encode("0123") == "".join(ro.RANDOM_ALPHABET[ord(c) % 27] for c in "0123")
    t1 = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}
    t2 = {"metadata": {"labels": {"app": "web"}, "annotations": {}}, "spec": {
        "containers": [{"image": "nginx:1", "name": "web"}], "volumes": None}}
    t3 = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}
    h = ro.compute_hash(t1)
    assert h == ro.compute_hash(t2) and h != ro.compute_hash(t3)
    assert set(h) <= set(ro.RANDOM_ALPHABET) and 1 <= len(h) <= 10
    assert ro.compute_hash(t1, 1) != h
    labelled = {"metadata": {"labels": {"app": "web", ro.HASH_LABEL: h}}, "spec": t1["spec"]}
    assert ro.equal_ignore_hash(labelled, t1) and not ro.equal_ignore_hash(labelled, t3)


@pytest.mark.parametrize(("surge", "unavailable", "desired", "want"), [
    ("25%", "25%", 10, (3, 2)), ("25%", "25%", 3, (1, 0)), (0, 0, 5, (0, 1)), ("50%", 1, 4, (2, 1)),
    (2, "0%", 1, (2, 0)),
])
def test_fenceposts(surge, unavailable, desired, want):
    assert ro.resolve_fenceposts(surge, unavailable, desired) == want


def test_rolling_update_steps_stay_within_surge_and_unavailable():
    """Simulate a 3-replica rollout with instantly available pods: never more than 4 or fewer than 3."""
    d = deployment(replicas=3)  # surge 1, unavailable 0
    old, new = rs("old", 3, revision=1), rs("new", 0, revision=2)
    steps = 0
    while ro.replicas(new) < 3 or ro.replicas(old) > 0:
        size = ro.new_rs_new_replicas(d, [old, new], new)
        new = rs("new", size, revision=2)
        assert ro.replicas(old) + ro.replicas(new) <= 4
        plan = ro.old_scale_down_plan(d, [old, new], ro.active([old]), new)
        if "old" in plan:
            old = rs("old", plan["old"], revision=1)
        assert ro.total_status([old, new], "availableReplicas") >= 3
        steps += 1
        assert steps < 10
    assert steps == 3


def test_unavailable_new_pods_block_scaling_down_old():
    d = deployment(replicas=4, surge=1, unavailable=0)
    old, new = rs("old", 4), rs("new", 1, available=0)
    assert ro.new_rs_new_replicas(d, [old, new], new) == 1  # at max surge already
    assert ro.old_scale_down_plan(d, [old, new], [old], new) == {}


def test_unhealthy_old_replicas_are_cleaned_first():
    d = deployment(replicas=4, surge=1, unavailable=1)
    old_broken = rs("broken", 2, available=0, created="2024-01-01T00:00:00Z")
    old_ok = rs("ok", 2, created="2024-01-02T00:00:00Z")
    new = rs("new", 1, available=0)
    plan = ro.old_scale_down_plan(d, [old_broken, old_ok, new], [old_broken, old_ok], new)
    # 5 pods, 3 must stay available, 1 new one is unavailable: one pod may go, and it is a broken one
    assert plan == {"broken": 1}


def test_proportional_scaling_during_rollout():
    d = deployment(replicas=15, surge=3, unavailable=2)
    # was 10 with max 13 when the rollout started
    old = rs("old", 8, **{ro.MAX_REPLICAS: "13", ro.DESIRED_REPLICAS: "10"})
    new = rs("new", 5, created="2024-01-02T00:00:00Z", **{ro.MAX_REPLICAS: "13", ro.DESIRED_REPLICAS: "10"})
    assert ro.is_scaling_event(d, new, [old])
    sizes = ro.scale_plan(d, new, [old])
    assert sum(sizes.values()) == 18  # 15 + surge 3
    assert sizes["old"] > 8 and sizes["new"] > 5


def test_scale_plan_simple_cases():
    d = deployment(replicas=5)
    only = rs("only", 3)
    assert ro.scale_plan(d, only, []) == {"only": 5}
    assert ro.scale_plan(deployment(replicas=3), only, []) == {}


def test_revision_annotations_and_history():
    d = deployment()
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "v2",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    target = rs("back", 3, revision=1)
    assert ro.sync_rs_annotations(d, target, 3, exists=True)
    ann = target["metadata"]["annotations"]
    assert ann[ro.REVISION] == "3" and ann[ro.REVISION_HISTORY] == "1"
    assert ann["kubernetes.io/change-cause"] == "v2" and "kubectl.kubernetes.io/last-applied-configuration" not in ann
    assert not ro.sync_rs_annotations(d, target, 3, exists=True)
    fresh = rs("fresh", 0)
    ro.sync_rs_annotations(d, fresh, 1, exists=False)
    assert fresh["metadata"]["annotations"][ro.DESIRED_REPLICAS] == "10"
    assert fresh["metadata"]["annotations"][ro.MAX_REPLICAS] == "13"


def test_status_and_conditions_like_kubernetes():
    at = datetime(2024, 1, 1, tzinfo=UTC)
    d = deployment(replicas=3, generation=2)
    new = rs("web-abc", 3)
    status = ro.rollout_status(d, [new], new, at)
    assert status["observedGeneration"] == 2 and status["replicas"] == 3 and status["updatedReplicas"] == 3
    assert status["availableReplicas"] == 3 and status["unavailableReplicas"] == 0
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable" and conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conds["Progressing"]["message"] == 'ReplicaSet "web-abc" has successfully progressed.'
    # halfway through a rollout with nothing new available: minimum availability still met at 25%
    d2 = deployment(replicas=4, status={"replicas": 4, "updatedReplicas": 0})
    old, new2 = rs("old", 3), rs("web-new", 2, available=0)
    status2 = ro.rollout_status(d2, [old, new2], new2, at)
    conds2 = {c["type"]: c for c in status2["conditions"]}
    assert conds2["Available"]["status"] == "True"
    assert conds2["Progressing"]["reason"] == "ReplicaSetUpdated"
    assert status2["unavailableReplicas"] == 2
