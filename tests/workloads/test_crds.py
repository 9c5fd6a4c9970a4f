"""CustomResourceDefinitions served as apiextensions-apiserver serves them: established names, structural
schemas (pruning, defaulting, validation with the schema's field paths), status and scale subresources,
printer columns, several versions, live discovery and OpenAPI (`kubectl explain`), watch, and deletion."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.rest import ApiException
from tests.conftest import module_server

HERE = Path(__file__).parent
GROUP = "stable.example.com"
server = module_server("--network", "loopback", "--components=", "--no-agent")


def crontab_crd() -> dict[str, Any]:
    return yaml.safe_load((HERE / "crontab_crd.yaml").read_text())


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def _apply_crd(server, crd: dict[str, Any]) -> None:
    server.apply(crd)
    server.kubectl("wait", "--for", "condition=established", f"crd/{crd['metadata']['name']}", "--timeout=30s")


@pytest.fixture(scope="module")
def crontabs(server):
    _apply_crd(server, crontab_crd())
    return server


def test_a_crd_is_established_with_its_names(crontabs) -> None:
    crd = json.loads(crontabs.kubectl("get", "crd", f"crontabs.{GROUP}", "-o", "json").stdout)
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert (conditions["NamesAccepted"]["status"], conditions["NamesAccepted"]["reason"]) == ("True", "NoConflicts")
    assert (conditions["Established"]["status"], conditions["Established"]["reason"]) == ("True",
                                                                                          "InitialNamesAccepted")
    assert crd["status"]["acceptedNames"]["listKind"] == "CronTabList"
    assert crd["status"]["storedVersions"] == ["v1"]
    assert crd["spec"]["conversion"] == {"strategy": "None"}
    resources = crontabs.kubectl("api-resources", "--api-group", GROUP).stdout
    assert " ".join(_rows(resources)[1]) == f"crontabs ct {GROUP}/v1 true CronTab"
    assert _rows(crontabs.kubectl("get", "crd").stdout)[0] == ["NAME", "CREATED", "AT"]


def test_custom_objects_are_pruned_defaulted_and_printed(crontabs) -> None:
    proc = crontabs.kubectl("apply", "-f", "-", input="""
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: pruned}
spec:
  cronSpec: "*/5 * * * *"
  image: cron-image
  unknown: 1
  port: http
  template: {anything: {goes: here}}
""", check=False)
    # kubectl apply asks for fieldValidation=Strict: an unknown field is an error, as against any cluster
    assert proc.returncode != 0
    assert 'CronTab in version "v1" cannot be handled as a CronTab: strict decoding error: unknown field ' \
           '"spec.unknown"' in proc.stderr
    proc = crontabs.kubectl("apply", "--validate=false", "-f", "-", input="""
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: pruned}
spec:
  cronSpec: "*/5 * * * *"
  image: cron-image
  unknown: 1
  port: http
  template: {anything: {goes: here}}
status: {ignored: true}
""")
    obj = json.loads(crontabs.kubectl("get", "ct", "pruned", "-o", "json").stdout)
    assert obj["spec"] == {"cronSpec": "*/5 * * * *", "image": "cron-image", "port": "http", "replicas": 1,
                           "template": {"anything": {"goes": "here"}}}
    assert "status" not in obj and obj["metadata"]["generation"] == 1  # status is the /status subresource's
    table = _rows(crontabs.kubectl("get", "crontabs").stdout)
    assert table[0] == ["NAME", "SPEC", "REPLICAS", "READY", "AGE"]
    row = next(r for r in table if r[0] == "pruned")
    assert row[1:7] == ["*/5", "*", "*", "*", "*", "1"] and row[7].endswith("s")  # READY empty: no status yet
    _client, api_client = crontabs.client()
    raw = api_client.rest_client.request(
        "GET", f"{crontabs.url}/apis/{GROUP}/v1/namespaces/default/crontabs/pruned",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io", "Authorization": f"Bearer {crontabs.token}"})
    cells = json.loads(raw.data or raw.read())["rows"][0]["cells"]
    assert cells[:4] == ["pruned", "*/5 * * * *", 1, None] and cells[4].endswith("s")
    assert "crontab.stable.example.com/pruned" in crontabs.kubectl("get", "all").stdout  # category "all"


@pytest.mark.parametrize(("spec", "errors"), [
    ({"cronSpec": "nope", "replicas": 20, "mode": "medium"}, [
        "spec.cronSpec: Invalid value: \"nope\": spec.cronSpec in body should match "
        "'^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'",
        'spec.mode: Unsupported value: "medium": supported values: "fast", "slow"',
        "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10"]),
    ({"replicas": "three"}, [
        "spec.cronSpec: Required value",
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"']),
    ({"cronSpec": "* * * * *", "replicas": 0}, [
        "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"]),
])
def test_invalid_custom_objects_are_refused_with_the_schema_field_path(crontabs, spec, errors) -> None:
    client, api_client = crontabs.client()
    custom = client.CustomObjectsApi(api_client)
    body = {"apiVersion": f"{GROUP}/v1", "kind": "CronTab", "metadata": {"name": "invalid"}, "spec": spec}
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(GROUP, "v1", "default", "crontabs", body)
    status = json.loads(info.value.body)
    assert info.value.status == 422 and status["reason"] == "Invalid"
    expected = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    assert status["message"] == f'CronTab.{GROUP} "invalid" is invalid: {expected}'
    assert status["details"]["causes"][0]["field"] == errors[0].split(":")[0]
    with pytest.raises(ApiException):
        custom.get_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "invalid")


def test_status_and_scale_subresources(crontabs) -> None:
    client, api_client = crontabs.client()
    custom = client.CustomObjectsApi(api_client)
    body = {"apiVersion": f"{GROUP}/v1", "kind": "CronTab", "metadata": {"name": "scaled"},
            "spec": {"cronSpec": "* * * * *"}}
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "crontabs", body)
    crontabs.kubectl("scale", "crontab", "scaled", "--replicas=3")
    obj = custom.get_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "scaled")
    assert obj["spec"]["replicas"] == 3 and obj["metadata"]["generation"] == 2
    custom.patch_namespaced_custom_object_status(GROUP, "v1", "default", "crontabs", "scaled", {
        "status": {"replicas": 2, "labelSelector": "app=cron", "conditions": [{"type": "Ready", "status": "True"}]},
        "spec": {"replicas": 9}})
    scale = custom.get_namespaced_custom_object_scale(GROUP, "v1", "default", "crontabs", "scaled")
    assert scale["spec"] == {"replicas": 3} and scale["status"] == {"replicas": 2, "selector": "app=cron"}
    obj = custom.get_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "scaled")
    assert obj["metadata"]["generation"] == 2  # a status write is not a spec change
    # a write to the main resource keeps the status the subresource wrote
    custom.patch_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "scaled", {"status": {"replicas": 7}})
    assert custom.get_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "scaled")["status"]["replicas"] == 2
    row = next(r for r in _rows(crontabs.kubectl("get", "ct").stdout) if r[0] == "scaled")
    assert row[6:8] == ["3", "True"]


def test_kubectl_explain_a_custom_kind(crontabs) -> None:
    out = crontabs.kubectl("explain", "crontab.spec").stdout
    assert "KIND:       CronTab" in out and "VERSION:    v1" in out
    assert "cronSpec\t<string> -required-" in out and "enum: fast, slow" in out
    assert "replicas\t<integer>" in out


def test_watch_sees_custom_objects_change(crontabs) -> None:
    client, api_client = crontabs.client()
    from kubernetes import watch

    custom = client.CustomObjectsApi(api_client)
    listed = custom.list_cluster_custom_object(GROUP, "v1", "crontabs")
    rv = listed["metadata"]["resourceVersion"]
    body = {"apiVersion": f"{GROUP}/v1", "kind": "CronTab", "metadata": {"name": "watched"},
            "spec": {"cronSpec": "* * * * *"}}
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "crontabs", body)
    custom.delete_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "watched")
    seen = []
    w = watch.Watch()
    for event in w.stream(custom.list_cluster_custom_object, GROUP, "v1", "crontabs", resource_version=rv,
                          timeout_seconds=10):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if ("DELETED", "watched") in seen:
            w.stop()
    assert seen == [("ADDED", "watched"), ("DELETED", "watched")]


def test_several_versions_conversion_none(server) -> None:
    crd = crontab_crd()
    crd["metadata"]["name"] = f"widgets.{GROUP}"
    crd["spec"]["names"] = {"plural": "widgets", "kind": "Widget"}
    v1 = crd["spec"]["versions"][0]
    v1["additionalPrinterColumns"] = []
    beta = copy.deepcopy(v1)
    beta.update(name="v1beta1", storage=False)
    beta["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["replicas"]["default"] = 5
    crd["spec"]["versions"] = [beta, v1]
    _apply_crd(server, crd)
    groups = json.loads(server.kubectl("get", "--raw", f"/apis/{GROUP}").stdout)
    assert groups["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in groups["versions"]] == ["v1", "v1beta1"]
    server.apply({"apiVersion": f"{GROUP}/v1beta1", "kind": "Widget", "metadata": {"name": "w"},
                  "spec": {"cronSpec": "* * * * *"}})
    as_v1 = json.loads(server.kubectl("get", f"widgets.v1.{GROUP}", "w", "-o", "json").stdout)
    as_beta = json.loads(server.kubectl("get", f"widgets.v1beta1.{GROUP}", "w", "-o", "json").stdout)
    assert as_v1["apiVersion"] == f"{GROUP}/v1" and as_beta["apiVersion"] == f"{GROUP}/v1beta1"
    assert as_v1["spec"]["replicas"] == 5  # defaulted by the version it was written with
    assert _rows(server.kubectl("get", "widgets").stdout)[0] == ["NAME", "AGE"]


def test_defaults_added_to_a_schema_apply_to_stored_objects_on_read(server) -> None:
    crd = crontab_crd()
    crd["metadata"]["name"] = f"sprockets.{GROUP}"
    crd["spec"]["names"] = {"plural": "sprockets", "kind": "Sprocket"}
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    _apply_crd(server, crd)
    server.apply({"apiVersion": f"{GROUP}/v1", "kind": "Sprocket", "metadata": {"name": "old"},
                  "spec": {"cronSpec": "* * * * *"}})
    props["image"]["default"] = "busybox"
    server.apply(crd)
    got = json.loads(server.kubectl("get", "sprockets", "old", "-o", "json").stdout)
    assert got["spec"]["image"] == "busybox" and got["spec"]["replicas"] == 1


def test_conflicting_names_are_not_accepted(crontabs) -> None:
    crd = crontab_crd()
    crd["metadata"]["name"] = f"crontabs2.{GROUP}"
    crd["spec"]["names"] = {"plural": "crontabs2", "kind": "CronTab2", "shortNames": ["ct"]}
    crontabs.apply(crd)
    got = json.loads(crontabs.kubectl("get", "crd", f"crontabs2.{GROUP}", "-o", "json").stdout)
    conditions = {c["type"]: c for c in got["status"]["conditions"]}
    assert (conditions["NamesAccepted"]["status"], conditions["NamesAccepted"]["reason"]) == ("False",
                                                                                              "ShortNamesConflict")
    assert conditions["Established"]["status"] == "False"
    assert crontabs.kubectl("get", "--raw", f"/apis/{GROUP}/v1/crontabs2", check=False).returncode != 0
    crontabs.kubectl("delete", "crd", f"crontabs2.{GROUP}")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: s["properties"]["spec"].pop("type"),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for "
     "specified object fields"),
    (lambda s: s["properties"]["spec"]["properties"].update(tags={"type": "array"}),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags].items: Required value: must be "
     "specified"),
    (lambda s: s["properties"]["spec"]["properties"]["replicas"].update(anyOf=[{"minimum": 1, "default": 2}]),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].anyOf[0].default: Forbidden: "
     "must be undefined to be structural"),
    (lambda s: s["properties"].update(metadata={"type": "object", "properties": {"labels": {"type": "object"}}}),
     "spec.versions[0].schema.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other "
     "than name and generateName, but metadata is implicitly specified"),
    (lambda s: s["properties"]["spec"]["properties"]["image"].update(uniqueItems=True),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[image].uniqueItems: Forbidden: "
     "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"),
])
def test_non_structural_schemas_are_refused(server, mutate, message) -> None:
    crd = crontab_crd()
    crd["metadata"]["name"] = f"brokens.{GROUP}"
    crd["spec"]["names"] = {"plural": "brokens", "kind": "Broken"}
    mutate(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    proc = server.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd), check=False)
    assert proc.returncode != 0 and message in proc.stderr
    assert server.kubectl("get", "crd", f"brokens.{GROUP}", check=False).returncode != 0


def test_a_kind_nobody_serves_says_so(server) -> None:
    proc = server.kubectl("apply", "-f", "-", input="apiVersion: nothing.example.com/v1\nkind: Gadget\n"
                                                     "metadata: {name: g}\n", check=False)
    assert proc.returncode != 0
    assert 'no matches for kind "Gadget" in version "nothing.example.com/v1"' in proc.stderr
    assert "ensure CRDs are installed first" in proc.stderr and "failed to check CRD" not in proc.stderr


def test_deleting_a_crd_deletes_its_objects_and_routes(server) -> None:
    crd = crontab_crd()
    crd["metadata"]["name"] = f"gizmos.{GROUP}"
    crd["spec"]["names"] = {"plural": "gizmos", "kind": "Gizmo"}
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = []
    _apply_crd(server, crd)
    for name in ("a", "b"):
        server.apply({"apiVersion": f"{GROUP}/v1", "kind": "Gizmo", "metadata": {"name": name},
                      "spec": {"cronSpec": "* * * * *"}})
    server.apply({"apiVersion": f"{GROUP}/v1", "kind": "Gizmo", "metadata": {"name": "held", "finalizers": [
        "example.com/hold"]}, "spec": {"cronSpec": "* * * * *"}})
    server.kubectl("delete", "crd", f"gizmos.{GROUP}", "--wait=false")
    deadline = time.monotonic() + 30
    while True:  # the held object waits for its own finalizer; the others are gone
        names = [r[0] for r in _rows(server.kubectl("get", "gizmos", "-o", "name").stdout or "x")]
        crd_now = json.loads(server.kubectl("get", "crd", f"gizmos.{GROUP}", "-o", "json").stdout)
        terminating = {c["type"]: c for c in crd_now["status"]["conditions"]}.get("Terminating")
        if names == [f"gizmo.{GROUP}/held"] and terminating:
            break
        assert time.monotonic() < deadline, (names, crd_now["status"])
        time.sleep(0.1)
    assert terminating["reason"] == "InstanceDeletionInProgress"
    assert "customresourcecleanup.apiextensions.k8s.io" in crd_now["metadata"]["finalizers"]
    created = server.kubectl("apply", "-f", "-", input=f"apiVersion: {GROUP}/v1\nkind: Gizmo\nmetadata: {{name: c}}\n"
                                                       "spec: {cronSpec: '* * * * *'}\n", check=False)
    assert (created.returncode != 0 and "MethodNotAllowed" in created.stderr) or "not allowed" in created.stderr
    server.kubectl("patch", "gizmo", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    server.kubectl("wait", "--for=delete", f"crd/gizmos.{GROUP}", "--timeout=30s")
    raw = server.kubectl("get", "--raw", f"/apis/{GROUP}/v1/gizmos", check=False)
    assert raw.returncode != 0 and "NotFound" in raw.stderr
    groups = json.loads(server.kubectl("get", "--raw", "/apis").stdout)
    assert all("gizmos" not in json.dumps(g) for g in groups["groups"])


def test_custom_resources_are_served_again_after_a_restart(make_server) -> None:
    first = make_server("--network", "loopback", "--components=", "--no-agent")
    _apply_crd(first, crontab_crd())
    first.apply({"apiVersion": f"{GROUP}/v1", "kind": "CronTab", "metadata": {"name": "kept"},
                 "spec": {"cronSpec": "* * * * *"}})
    data_dir = first.data_dir
    first.stop()
    again = make_server("--network", "loopback", "--components=", "--no-agent", data_dir=data_dir)
    rows = _rows(again.kubectl("get", "crontabs").stdout)
    assert rows[0] == ["NAME", "SPEC", "REPLICAS", "READY", "AGE"] and rows[1][0] == "kept"
    assert "KIND:       CronTab" in again.kubectl("explain", "crontab").stdout


def test_a_generated_style_crd_with_status_defaults_and_cel_rules(server) -> None:
    crd = yaml.safe_load((HERE / "classes_crd.yaml").read_text())
    _apply_crd(server, crd)
    server.apply({"apiVersion": "net.example.com/v1", "kind": "RouteClass", "metadata": {"name": "edge"},
                  "spec": {"controllerName": "example.net/gateway-controller", "description": "the edge"}})
    obj = json.loads(server.kubectl("get", "routeclass", "edge", "-o", "json").stdout)
    assert obj["status"]["conditions"][0]["message"] == "Waiting for controller"  # the status default
    rows = _rows(server.kubectl("get", "routeclasses", "-o", "wide").stdout)
    assert rows[0] == ["NAME", "CONTROLLER", "ACCEPTED", "AGE", "DESCRIPTION"]
    assert rows[1][:3] == ["edge", "example.net/gateway-controller", "Unknown"] and rows[1][-2:] == ["the", "edge"]
    bad = server.kubectl("apply", "-f", "-", check=False, input=(
        "apiVersion: net.example.com/v1\nkind: RouteClass\nmetadata: {name: bad}\n"
        "spec: {controllerName: no-slash}\n"))
    assert bad.returncode != 0 and "spec.controllerName in body should match" in bad.stderr
    assert _rows(server.kubectl("get", "net-example").stdout)[1][0] == "edge"  # its category
