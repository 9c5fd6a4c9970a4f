"""JSON merge patch, JSON patch and strategic merge patch with Kubernetes' semantics and statuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nanokube.api.errors import ApiError
from nanokube.api.patch.json_merge import json_merge_patch
from nanokube.api.patch.json_patch import json_patch
from nanokube.api.patch.strategic_merge import strategic_merge_patch
from nanokube.api.served_resources import by_kind
from nanokube.apiserver.patching import apply_patch


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
        "spec": {
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"spec": {"containers": [
                {"name": "a", "image": "x", "args": ["1", "2"],
                 "ports": [{"containerPort": 80}, {"containerPort": 81}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "b", "image": "y"},
            ]}},
        },
    }


def smp(patch: dict[str, Any], obj: dict[str, Any] | None = None) -> dict[str, Any]:
    return strategic_merge_patch(obj or deployment(), patch, "apps", "v1", "Deployment")


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def test_containers_merge_by_name_and_nested_lists_by_their_keys() -> None:
    original = deployment()
    result = smp({"spec": {"template": {"spec": {"containers": [
        {"name": "a", "image": "x2", "ports": [{"containerPort": 82}],
         "env": [{"name": "B", "value": "changed"}, {"name": "C", "value": "3"}]},
        {"name": "c", "image": "z"},
    ]}}}}, original)
    assert original == deployment(), "input must not be modified"
    assert [c["name"] for c in containers(result)] == ["a", "c", "b"]
    a = containers(result)[0]
    assert a["image"] == "x2"
    assert [p["containerPort"] for p in a["ports"]] == [82, 80, 81]
    # server-only A keeps its place before B (live order wins where both are known), new C follows B
    assert a["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "changed"}, {"name": "C", "value": "3"}]
    assert a["args"] == ["1", "2"]


def test_non_merge_lists_and_atomic_values_are_replaced() -> None:
    result = smp({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["3"]}]}}}})
    assert containers(result)[0]["args"] == ["3"]


def test_patch_delete_directive_in_list_and_map() -> None:
    result = smp({"spec": {"template": {"spec": {"containers": [
        {"name": "b", "$patch": "delete"},
        {"name": "a", "env": [{"name": "A", "$patch": "delete"}]},
    ]}}}})
    assert [c["name"] for c in containers(result)] == ["a"]
    assert containers(result)[0]["env"] == [{"name": "B", "value": "2"}]
    assert smp({"spec": {"strategy": {"$patch": "delete"}}})["spec"]["strategy"] == {}


def test_patch_replace_directive() -> None:
    result = smp({"spec": {"template": {"spec": {"containers": [{"name": "n", "image": "i"}, {"$patch": "replace"}]}}}})
    assert containers(result) == [{"name": "n", "image": "i"}]
    result = smp({"metadata": {"labels": {"$patch": "replace", "z": "3"}}})
    assert result["metadata"]["labels"] == {"z": "3"}


def test_null_deletes_and_maps_merge() -> None:
    result = smp({"metadata": {"labels": {"x": None, "w": "0"}}})
    assert result["metadata"]["labels"] == {"y": "2", "w": "0"}


def test_retain_keys_clears_fields_not_listed() -> None:
    result = smp({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert result["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(ApiError) as info:
        smp({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}})
    assert (info.value.code, info.value.message) == (400, "invalid patch format of retainKeys")


def test_set_element_order() -> None:
    result = smp({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "image": "q"}],
    }}}})
    assert [(c["name"], c["image"]) for c in containers(result)] == [("b", "y"), ("a", "q")]
    result = smp({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}})
    assert result["metadata"]["finalizers"] == ["b", "a"]


def test_primitive_list_with_merge_strategy_and_delete_from_primitive_list() -> None:
    result = smp({"metadata": {"finalizers": ["c", "a"]}})
    assert result["metadata"]["finalizers"] == ["c", "a", "b"]
    result = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}})
    assert result["metadata"]["finalizers"] == ["c", "b"]


def test_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    result = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}, "", "v1", "Service")
    assert result["spec"]["ports"] == [{"port": 80, "name": "http"}, {"port": 443, "name": "https", "targetPort": 8443}]


def test_missing_merge_key_is_an_internal_error_like_kubernetes() -> None:
    with pytest.raises(ApiError) as info:
        smp({"spec": {"template": {"spec": {"containers": [{"image": "nope"}]}}}})
    assert info.value.code == 500
    assert info.value.message == "map: map[image:nope] does not contain declared merge key: name"


def test_merge_patch_null_deletion() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": [1], "keep": True}
    result = json_merge_patch(target, {"a": {"b": None}, "d": None, "e": {"f": None, "g": 1}})
    assert result == {"a": {"c": 2}, "keep": True, "e": {"g": 1}}
    assert target["a"] == {"b": 1, "c": 2}
    assert json_merge_patch(target, {"a": [1, None]})["a"] == [1, None]


def test_json_patch_operations() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}]}}
    result = json_patch(doc, [
        {"op": "add", "path": "/spec/ports/-", "value": {"port": 81}},
        {"op": "add", "path": "/spec/ports/0", "value": {"port": 79}},
        {"op": "test", "path": "/spec/ports/2/port", "value": 81},
        {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
        {"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"},
        {"op": "move", "from": "/metadata/labels/a", "path": "/metadata/labels/b"},
        {"op": "remove", "path": "/spec/ports/-1"},
        {"op": "add", "path": "/metadata/labels/x~1y", "value": "z"},
    ])
    assert result == {"metadata": {"labels": {"b": "2", "x/y": "z"}, "annotations": {"a": "2"}},
                      "spec": {"ports": [{"port": 79}, {"port": 80}]}}
    assert doc == {"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}]}}


@pytest.mark.parametrize(("ops", "cause"), [
    ([{"op": "remove", "path": "/x"}], "error in remove for path: '/x': Unable to remove nonexistent key: x: missing value"),
    ([{"op": "test", "path": "/a", "value": 2}], "testing value /a failed: test failed"),
    ([{"op": "test", "path": "/a", "value": 1.0}], "testing value /a failed: test failed"),
    ([{"op": "add", "path": "/x/y", "value": 1}], 'add operation does not apply: doc is missing path: "/x/y": missing value'),
    ([{"op": "replace", "path": "/l/5", "value": 1}], "replace operation does not apply: doc is missing key: /l/5: missing value"),
    ([{"op": "frob", "path": "/a"}], "Unexpected kind: frob"),
])
def test_json_patch_failures_are_422(ops: list[dict[str, Any]], cause: str) -> None:
    with pytest.raises(ApiError) as info:
        json_patch({"a": 1, "l": [1]}, ops)
    assert info.value.code == 422
    assert info.value.reason == "Invalid"
    assert info.value.message == "the server rejected our request due to an error in our request"
    assert info.value.details == {"causes": [{"message": cause}]}


CONFIGMAPS = by_kind("", "ConfigMap")


def test_undecodable_patch_bodies_are_400() -> None:
    for patch_type, body in [("application/json-patch+json", b'{"op": "add"}'),
                             ("application/strategic-merge-patch+json", b"[]"),
                             ("application/merge-patch+json", b"null"),
                             ("application/merge-patch+json", b"{nope")]:
        with pytest.raises(ApiError) as info:
            apply_patch(CONFIGMAPS, {"metadata": {"name": "x"}}, body, patch_type, manager="", force=False)
        assert info.value.code == 400, (patch_type, body)
    assert apply_patch(CONFIGMAPS, {"metadata": {"name": "x"}}, b"[]", "application/json-patch+json", manager="",
                       force=False) == {"metadata": {"name": "x"}}


def test_strategic_merge_is_deterministic_for_copies() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x3"}]}}}}
    assert smp(copy.deepcopy(patch)) == smp(copy.deepcopy(patch))
