"""Generic registry behaviour over HTTP, as Kubernetes' registry/store.go and the request handlers give it:
dryRun, fieldValidation, deletecollection, graceful deletion, finalizers, propagationPolicy, preconditions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from tests.apiserver.helpers_http import SERVICES, Http
from tests.conftest import Server, module_server

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
SECRETS = "/api/v1/namespaces/default/secrets"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
MERGE = "application/merge-patch+json"


srv = module_server("--network", "loopback", "--components=")


@pytest.fixture(scope="module")
def http(srv: Server) -> Http:
    return Http(srv)


def cm(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"k": "v"}}


def pod(name: str, node: str | None = "node-1", **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nanokube/echo"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta}, "spec": spec}


def deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def status_of(body: dict[str, Any]) -> tuple[str, str]:
    return body["reason"], body["message"]


# --- dryRun ----------------------------------------------------------------------------------------------------


def test_dry_run_changes_nothing_for_any_verb(http: Http) -> None:
    http.ok("POST", CONFIGMAPS, cm("dry", labels={"set": "dry"}))
    created_svc = http.ok("POST", SERVICES + "?dryRun=All", {"metadata": {"name": "dry-svc"}, "spec": {
        "type": "NodePort", "ports": [{"port": 80, "nodePort": 30777}]}})
    assert created_svc["spec"]["ports"][0]["nodePort"] == 30777
    before = http.list_rv()
    status, out = http("POST", CONFIGMAPS + "?dryRun=All", cm("dry-new"))
    assert status == 201 and out["metadata"]["name"] == "dry-new" and out["metadata"]["uid"]
    changed = {**http.ok("GET", CONFIGMAPS + "/dry"), "data": {"k": "changed"}}
    assert http.ok("PUT", CONFIGMAPS + "/dry?dryRun=All", changed)["data"] == {"k": "changed"}
    assert http.ok("PATCH", CONFIGMAPS + "/dry?dryRun=All", {"data": {"k": "patched"}}, ctype=MERGE)["data"] == {
        "k": "patched"}
    assert http.ok("DELETE", CONFIGMAPS + "/dry?dryRun=All")["status"] == "Success"
    assert [i["metadata"]["name"] for i in http.ok("DELETE", CONFIGMAPS + "?dryRun=All&labelSelector=set%3Ddry")[
        "items"]] == ["dry"]
    assert http.list_rv() == before
    assert http("GET", CONFIGMAPS + "/dry-new")[0] == 404
    assert http.ok("GET", CONFIGMAPS + "/dry")["data"] == {"k": "v"}
    assert http("GET", SERVICES + "/dry-svc")[0] == 404
    # The dry-run Service reserved nothing: its nodePort is free.
    http.ok("POST", SERVICES, {"metadata": {"name": "wet-svc"}, "spec": {
        "type": "NodePort", "ports": [{"port": 80, "nodePort": 30777}]}})


@pytest.mark.parametrize(("method", "path", "kind"), [
    ("POST", CONFIGMAPS, "CreateOptions"), ("PUT", CONFIGMAPS + "/x", "UpdateOptions"),
    ("PATCH", CONFIGMAPS + "/x", "PatchOptions"), ("DELETE", CONFIGMAPS + "/x", "DeleteOptions")])
def test_unsupported_dry_run_value_is_422(http: Http, method: str, path: str, kind: str) -> None:
    http("POST", CONFIGMAPS, cm("x"))
    status, body = http(method, path + "?dryRun=Yes", cm("x") if method != "DELETE" else None,
                        ctype=MERGE if method == "PATCH" else "application/json")
    assert status == 422
    assert body["message"] == f'{kind}.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{{"Yes"}}: ' \
                              'supported values: "All"'
    assert body["details"] == {"group": "meta.k8s.io", "kind": kind, "causes": [{
        "reason": "FieldValueNotSupported", "message": 'Unsupported value: []string{"Yes"}: supported values: "All"',
        "field": "dryRun"}]}


# --- fieldValidation -------------------------------------------------------------------------------------------


def _post_raw(http: Http, path: str, body: dict[str, Any]) -> Any:
    return http.pool.request("POST", http.base + path, body=json.dumps(body).encode(),
                             headers={"Authorization": http.auth, "Content-Type": "application/json"})


def test_field_validation_strict_warn_ignore(http: Http) -> None:
    body = {**cm("fv"), "bogus": 1, "data": {"k": "v"}}
    before = http.list_rv()
    resp = _post_raw(http, CONFIGMAPS + "?fieldValidation=Strict", body)
    assert resp.status == 400
    assert json.loads(resp.data)["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                                                'strict decoding error: unknown field "bogus"')
    assert http.list_rv() == before
    resp = _post_raw(http, CONFIGMAPS + "?fieldValidation=Warn", body)
    assert resp.status == 201 and resp.headers.getlist("Warning") == ['299 - "unknown field \\"bogus\\""']
    assert "bogus" not in json.loads(resp.data)  # unknown fields never reach storage
    assert "bogus" not in http.ok("GET", CONFIGMAPS + "/fv")
    resp = _post_raw(http, CONFIGMAPS + "?fieldValidation=Ignore", {**body, "metadata": {"name": "fv2"}})
    assert resp.status == 201 and not resp.headers.getlist("Warning") and "bogus" not in json.loads(resp.data)
    resp = _post_raw(http, SERVICES, {"metadata": {"name": "fv-svc"}, "spec": {"ports": [{"port": 80, "bogus": 1}]}})
    assert resp.status == 201 and resp.headers.getlist("Warning") == ['299 - "unknown field \\"spec.ports[0].bogus\\""']
    assert http.ok("GET", SERVICES + "/fv-svc")["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    status, out = http("POST", CONFIGMAPS + "?fieldValidation=Loud", cm("fv3"))
    assert status == 422 and out["message"] == ('CreateOptions.meta.k8s.io "" is invalid: fieldValidation: '
                                                'Unsupported value: "Loud": supported values: "", "Ignore", '
                                                '"Strict", "Warn"')


# --- deletecollection ------------------------------------------------------------------------------------------


def test_deletecollection_deletes_what_the_selector_matches_and_releases_allocations(http: Http) -> None:
    for i in range(3):
        http.ok("POST", SERVICES, {"metadata": {"name": f"dc-{i}", "labels": {"batch": "dc" if i < 2 else "keep"}},
                                   "spec": {"clusterIP": f"127.96.50.{i + 1}", "ports": [{"port": 80}]}})
    out = http.ok("DELETE", SERVICES + "?labelSelector=batch%3Ddc")
    assert out["kind"] == "ServiceList" and out["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in out["items"]] == ["dc-0", "dc-1"]
    left = [s["metadata"]["name"] for s in http.ok("GET", SERVICES + "?labelSelector=batch")["items"]]
    assert left == ["dc-2"]
    # Their ClusterIPs are free again.
    http.ok("POST", SERVICES, {"metadata": {"name": "dc-again"}, "spec": {"clusterIP": "127.96.50.1",
                                                                          "ports": [{"port": 80}]}})


# --- graceful deletion -----------------------------------------------------------------------------------------


def test_graceful_pod_delete_marks_then_shortens_then_deletes(http: Http) -> None:
    http.ok("POST", PODS, pod("graceful"))
    status, first = http("DELETE", PODS + "/graceful")
    assert status == 200 and first["kind"] == "Pod"  # Kubernetes answers 200, with the pod
    md = first["metadata"]
    assert md["deletionGracePeriodSeconds"] == 30
    deadline = ts(md["deletionTimestamp"])
    assert abs((deadline - datetime.now(deadline.tzinfo)).total_seconds() - 30) < 5
    assert http.ok("GET", PODS + "/graceful")["metadata"]["deletionTimestamp"] == md["deletionTimestamp"]

    # A status write during termination (the kubelet's) keeps the pod.
    http.ok("PATCH", PODS + "/graceful/status", {"status": {"phase": "Running"}}, ctype=MERGE)
    # A longer grace period changes nothing; a shorter one moves the deadline.
    rv = http.ok("GET", PODS + "/graceful")["metadata"]["resourceVersion"]
    again = http.ok("DELETE", PODS + "/graceful?gracePeriodSeconds=60")
    assert again["metadata"]["resourceVersion"] == rv and again["metadata"]["deletionGracePeriodSeconds"] == 30
    shorter = http.ok("DELETE", PODS + "/graceful?gracePeriodSeconds=10")["metadata"]
    assert shorter["deletionGracePeriodSeconds"] == 10
    assert ts(shorter["deletionTimestamp"]) == deadline - timedelta(seconds=20)
    gone = http.ok("DELETE", PODS + "/graceful", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                  "gracePeriodSeconds": 0})
    assert gone["metadata"]["name"] == "graceful"
    assert http("GET", PODS + "/graceful")[0] == 404


def test_unscheduled_or_finished_pods_go_at_once(http: Http) -> None:
    http.ok("POST", PODS, pod("pending", node=None))
    assert http.ok("DELETE", PODS + "/pending")["kind"] == "Pod"
    assert http("GET", PODS + "/pending")[0] == 404
    http.ok("POST", PODS, pod("done"))
    http.ok("PATCH", PODS + "/done/status", {"status": {"phase": "Succeeded"}}, ctype=MERGE)
    http.ok("DELETE", PODS + "/done")
    assert http("GET", PODS + "/done")[0] == 404


# --- finalizers ------------------------------------------------------------------------------------------------


def test_finalizers_hold_the_object_until_removed(http: Http) -> None:
    http.ok("POST", CONFIGMAPS, cm("held", finalizers=["example.com/hold"]))
    status, out = http("DELETE", CONFIGMAPS + "/held")
    assert status == 200 and out["kind"] == "ConfigMap"  # not yet deleted: the object, not a Status
    assert out["metadata"]["deletionGracePeriodSeconds"] == 0 and out["metadata"]["deletionTimestamp"]
    rv = out["metadata"]["resourceVersion"]
    assert http.ok("DELETE", CONFIGMAPS + "/held")["metadata"]["resourceVersion"] == rv  # nothing to write again
    status, err = http("PATCH", CONFIGMAPS + "/held", {"metadata": {"finalizers": ["example.com/hold", "b"]}},
                       ctype=MERGE)
    assert status == 422 and err["message"] == (
        'ConfigMap "held" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object '
        'is being deleted, found new finalizers []string{"b"}')
    http.ok("PATCH", CONFIGMAPS + "/held", {"metadata": {"finalizers": None}}, ctype=MERGE)
    assert http("GET", CONFIGMAPS + "/held")[0] == 404


def test_immediate_delete_answers_with_a_status_for_most_kinds(http: Http) -> None:
    created = http.ok("POST", CONFIGMAPS, cm("plain"))
    assert http.ok("DELETE", CONFIGMAPS + "/plain") == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": "plain", "kind": "configmaps", "uid": created["metadata"]["uid"]}}
    dep = http.ok("POST", DEPLOYMENTS, deployment("status-dep"))
    assert http.ok("DELETE", DEPLOYMENTS + "/status-dep")["details"] == {
        "name": "status-dep", "group": "apps", "kind": "deployments", "uid": dep["metadata"]["uid"]}


# --- propagationPolicy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "body", "finalizers", "code"), [
    ("?propagationPolicy=Foreground", None, ["foregroundDeletion"], 200),
    ("", {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"}, ["orphan"], 200),
    ("?orphanDependents=true", None, ["orphan"], 200),
])
def test_propagation_policy_sets_the_gc_finalizer(http: Http, query: str, body: Any, finalizers: list[str],
                                                  code: int) -> None:
    name = f"gc-{len(finalizers[0])}-{len(query)}"
    created = http.ok("POST", DEPLOYMENTS, deployment(name))
    status, out = http("DELETE", f"{DEPLOYMENTS}/{name}{query}", body)
    assert status == code
    md = out["metadata"]
    assert md["finalizers"] == finalizers and md["deletionTimestamp"] and md["deletionGracePeriodSeconds"] == 0
    assert md["generation"] == created["metadata"]["generation"] + 1
    # Background afterwards takes the GC finalizer away again, and then nothing holds the object.
    http.ok("DELETE", f"{DEPLOYMENTS}/{name}?propagationPolicy=Background")
    assert http("GET", f"{DEPLOYMENTS}/{name}")[0] == 404


def test_cascading_delete_that_waits_is_202(http: Http) -> None:
    http.ok("POST", CONFIGMAPS, cm("cascade", finalizers=["example.com/hold"]))
    status, out = http("DELETE", CONFIGMAPS + "/cascade?orphanDependents=false")
    assert status == 202 and out["metadata"]["finalizers"] == ["example.com/hold"]
    http.ok("PATCH", CONFIGMAPS + "/cascade", {"metadata": {"finalizers": []}}, ctype=MERGE)


def test_invalid_delete_options(http: Http) -> None:
    http.ok("POST", CONFIGMAPS, cm("opts"))
    status, out = http("DELETE", CONFIGMAPS + "/opts?propagationPolicy=Now")
    assert status == 422 and out["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Now": supported values: '
        '"Foreground", "Background", "Orphan", "nil"')
    status, out = http("DELETE", CONFIGMAPS + "/opts", {"orphanDependents": True, "propagationPolicy": "Orphan"})
    assert status == 422 and out["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Orphan": orphanDependents and '
        "deletionPropagation cannot be both set")
    status, out = http("DELETE", CONFIGMAPS + "/opts", {"preconditions": {"uid": "not-it"}})
    uid = http.ok("GET", CONFIGMAPS + "/opts")["metadata"]["uid"]
    assert status == 409 and status_of(out) == ("Conflict", (
        f'Operation cannot be fulfilled on ConfigMap "opts": the UID in the precondition (not-it) does not match the '
        f"UID in record ({uid}). The object might have been deleted and then recreated"))
    status, out = http("DELETE", CONFIGMAPS + "/opts", {"preconditions": {"resourceVersion": "1"}})
    assert status == 409 and "the ResourceVersion in the precondition (1) does not match" in out["message"]
    http.ok("DELETE", CONFIGMAPS + "/opts", {"preconditions": {"uid": uid}})


# --- error shapes ----------------------------------------------------------------------------------------------


def test_invalid_names_the_qualified_kind_for_other_groups(http: Http) -> None:
    bad = deployment("bad-replicas")
    bad["spec"]["replicas"] = -1
    status, out = http("POST", DEPLOYMENTS, bad)
    assert status == 422 and out["message"] == (
        'Deployment.apps "bad-replicas" is invalid: spec.replicas: Invalid value: -1: must be greater than or '
        "equal to 0")
    assert out["details"]["group"] == "apps" and out["details"]["kind"] == "Deployment"


def test_secret_update_reports_each_error_once(http: Http) -> None:
    http.ok("POST", SECRETS, {"metadata": {"name": "once"}, "stringData": {"a": "1"}})
    current = http.ok("GET", SECRETS + "/once")
    current["data"]["bad key"] = "eA=="
    status, out = http("PUT", SECRETS + "/once", current)
    assert status == 422
    assert [c["field"] for c in out["details"]["causes"]] == ["data[bad key]"]
