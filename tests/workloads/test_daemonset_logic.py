"""daemonset_logic: eligibility, the per-node pod, and rolling-update steps."""

from __future__ import annotations

from datetime import UTC, datetime

from nanokube.controllers import daemonset_logic as logic

AT = datetime(2026, 1, 1, tzinfo=UTC)


def ds(**spec: object) -> dict:
    return {"metadata": {"name": "d", "namespace": "default", "uid": "u", "generation": 2},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}, **spec}}


def node(name: str, labels: dict | None = None, **spec: object) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def pod(name: str, node_name: str, rev: str, ready: bool = True) -> dict:
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": f"2025-01-01T00:00:0{name[-1]}Z",
                         "labels": {"controller-revision-hash": rev}},
            "spec": {"nodeName": node_name},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_eligibility_follows_selector_and_taints():
    assert logic.should_run(ds(), node("n", unschedulable=True)) == (True, True)  # default toleration
    selective = ds(template={"spec": {"nodeSelector": {"role": "edge"}}})
    assert logic.should_run(selective, node("n")) == (False, False)
    assert logic.should_run(selective, node("n", {"role": "edge"})) == (True, True)
    assert logic.should_run(ds(), node("n", taints=[{"key": "k", "effect": "NoSchedule"}])) == (False, True)
    assert logic.should_run(ds(), node("n", taints=[{"key": "k", "effect": "NoExecute"}])) == (False, False)


def test_pod_is_pinned_by_a_metadata_name_term():
    p = logic.new_pod(ds(), "n1", "d-abc")
    assert logic.target_node(p) == "n1" and p["metadata"]["labels"]["controller-revision-hash"] == "d-abc"
    assert p["metadata"]["generateName"] == "d-"


def test_rolling_update_deletes_at_most_max_unavailable_outdated_pods():
    nodes = [node(f"n{i}") for i in range(1, 4)]
    pods = {f"n{i}": [pod(f"p{i}", f"n{i}", "old")] for i in range(1, 4)}
    step = logic.plan(ds(), nodes, pods, "new", AT)
    assert [p["metadata"]["name"] for p in step.delete] == ["p1"] and step.create == []
    pods["n1"] = []
    assert logic.plan(ds(), nodes, pods, "new", AT).create == ["n1"]
    assert logic.plan(ds(), nodes, pods, "new", AT).delete == []  # one unavailable already
    both = ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}})
    pods["n1"] = [pod("p1", "n1", "old")]
    assert len(logic.plan(both, nodes, pods, "new", AT).delete) == 3
    assert logic.rolling_params(ds(updateStrategy={"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 0}}), 3) \
        == (2, 0)


def test_pods_on_vanished_nodes_and_duplicates_go():
    step = logic.plan(ds(), [node("n1")], {"n1": [pod("p1", "n1", "r"), pod("p2", "n1", "r")],
                                           "gone": [pod("p3", "gone", "r")]}, "r", AT)
    assert sorted(p["metadata"]["name"] for p in step.delete) == ["p2", "p3"]
