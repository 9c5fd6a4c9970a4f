"""How long a pod tolerates a NoExecute taint (taint-eviction controller)."""

from __future__ import annotations

from nanokube.controllers.tainteviction import seconds_tolerated

UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}


def pod(*tolerations: dict) -> dict:
    return {"spec": {"tolerations": list(tolerations)}}


def test_no_toleration_gets_the_default_for_unreachable_and_none_for_other_taints() -> None:
    assert seconds_tolerated(pod(), UNREACHABLE, 300) == 300
    assert seconds_tolerated(pod(), {"key": "dedicated", "effect": "NoExecute"}, 300) == 0


def test_explicit_tolerations() -> None:
    forever = {"key": UNREACHABLE["key"], "operator": "Exists", "effect": "NoExecute"}
    assert seconds_tolerated(pod(forever), UNREACHABLE, 300) is None
    assert seconds_tolerated(pod({**forever, "tolerationSeconds": 7}), UNREACHABLE, 300) == 7
    assert seconds_tolerated(pod({"operator": "Exists"}), UNREACHABLE, 300) is None
    other_effect = {**forever, "effect": "NoSchedule"}
    assert seconds_tolerated(pod(other_effect), UNREACHABLE, 300) == 300
