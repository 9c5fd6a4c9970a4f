"""Server-side apply: merge by list-map keys (with defaulted key fields), managedFields bookkeeping, removal of
dropped fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nanokube.api.patch.server_side_apply import server_side_apply


def fixed() -> datetime:
    return datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def config(ports: list[dict[str, Any]], labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "default"}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": ports, "selector": {"app": "w"}}}


def test_first_apply_creates_and_records_manager() -> None:
    obj = server_side_apply(None, config([{"port": 80, "protocol": "TCP"}], {"a": "1"}), "kubectl", now=fixed)
    assert obj["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}]
    (entry,) = obj["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl" and entry["operation"] == "Apply" and entry["time"] == "2025-01-02T03:04:05Z"
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:a": {}}},
        "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}, "f:protocol": {}}},
                   "f:selector": {}},
    }


def test_list_map_items_merge_and_other_writers_fields_survive() -> None:
    live = server_side_apply(None, config([{"port": 80, "protocol": "TCP"}]), "kubectl", now=fixed)
    live["spec"]["ports"][0]["nodePort"] = 30080  # set by someone else (the allocator)
    live["spec"]["clusterIP"] = "10.96.0.5"
    out = server_side_apply(live, config([{"port": 80, "protocol": "TCP", "name": "http"},
                                          {"port": 81, "protocol": "TCP"}]), "kubectl", now=fixed)
    assert out["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "nodePort": 30080, "name": "http"},
                                    {"port": 81, "protocol": "TCP"}]
    assert out["spec"]["clusterIP"] == "10.96.0.5"
    assert len(out["metadata"]["managedFields"]) == 1


def test_fields_dropped_from_config_are_removed() -> None:
    live = server_side_apply(None, config([{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}],
                                          {"a": "1", "b": "2"}), "kubectl", now=fixed)
    out = server_side_apply(live, config([{"port": 80, "protocol": "TCP"}], {"a": "1"}), "kubectl", now=fixed)
    assert out["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert out["metadata"]["labels"] == {"a": "1"}


def test_fields_still_owned_by_another_applier_are_kept() -> None:
    live = server_side_apply(None, config([{"port": 80, "protocol": "TCP"}], {"a": "1"}), "one", now=fixed)
    live = server_side_apply(live, config([{"port": 80, "protocol": "TCP"}], {"a": "1", "b": "2"}), "two", now=fixed)
    out = server_side_apply(live, config([{"port": 80, "protocol": "TCP"}], {}), "one", now=fixed)
    assert out["metadata"]["labels"] == {"a": "1", "b": "2"}  # 'a' is still applied by "two"
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["one", "two"]


def test_list_map_keys_take_schema_defaults() -> None:
    from nanokube.api.patch import typed

    ports = typed.root_type("apps", "v1", "Deployment").child("spec")[0].child("template")[0].child("spec")[0] \
        .child("containers")[0].item().child("ports")[0]
    assert typed.item_element(ports, {"containerPort": 80}, 0) == \
        typed.item_element(ports, {"containerPort": 80, "protocol": "TCP"}, 0)
    svc_ports = typed.root_type("", "v1", "Service").child("spec")[0].child("ports")[0]
    assert typed.item_element(svc_ports, {"protocol": "UDP"}, 0) == ("k", (("protocol", '"UDP"'),))
    selector_owner = typed.root_type("", "v1", "Pod").child("spec")[0].child("containers")[0]
    try:
        typed.item_element(selector_owner, {"image": "x"}, 0)
    except typed.TypedError as exc:
        assert "omits all key fields" in str(exc)
    else:
        raise AssertionError("an item without its key must be rejected")


def test_duplicate_keys_in_the_configuration_are_a_500() -> None:
    import pytest

    from nanokube.api.errors import ApiError

    with pytest.raises(ApiError) as err:
        server_side_apply(None, config([{"port": 80}, {"port": 80, "protocol": "TCP"}]), "kubectl", now=fixed)
    assert err.value.code == 500
    assert 'duplicate entries for key [port=80,protocol="TCP"]' in err.value.message


def test_first_apply_on_an_untracked_object_credits_before_first_apply() -> None:
    live = config([{"port": 80, "protocol": "TCP"}], {"a": "1"})
    out = server_side_apply(live, config([{"port": 80, "protocol": "TCP"}], {"a": "1", "b": "2"}), "kubectl",
                            now=fixed)
    owners = {(e["manager"], e["operation"]) for e in out["metadata"]["managedFields"]}
    assert owners == {("kubectl", "Apply"), ("before-first-apply", "Update")}


def test_more_than_ten_updaters_fold_into_ancient_changes() -> None:
    from nanokube.api.patch import managed_fields, typed

    t = typed.root_type("", "v1", "ConfigMap")
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    managers: managed_fields.Managers = {}
    for i in range(12):
        new = {**obj, "data": {**obj["data"], f"k{i}": "v"}}
        managers = managed_fields.track_update(obj, new, managers, f"m{i:02}", "v1", "", t, [], f"2025-01-01T00:00:{i:02}Z")
        obj = new
    names = sorted(e.manager for e in managers.values())
    assert len(names) == 10 and names[0] == "ancient-changes" and "m00" not in names and "m11" in names
