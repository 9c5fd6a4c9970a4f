"""Status errors, paging, dry-run, auth and watch resumption over raw HTTP."""

from __future__ import annotations

import json
import ssl

import pytest
import urllib3


@pytest.fixture(scope="module")
def http(api_server):
    ctx = ssl.create_default_context(cafile=str(api_server.data_dir / "pki" / "ca.crt"))
    pool = urllib3.PoolManager(ssl_context=ctx)

    def call(method, path, body=None, *, token=True, ctype="application/json", raw=None, headers=None):
        hdrs = {"Content-Type": ctype, **(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {api_server.token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        resp = pool.request(method, api_server.url + path, body=data, headers=hdrs, preload_content=True)
        try:
            payload = json.loads(resp.data) if resp.data else None
        except ValueError:
            payload = resp.data
        return resp.status, payload

    return call


SVC = "/api/v1/namespaces/default/services"


def _svc(name, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], **spec}}


def test_no_or_wrong_token_is_401(http):
    status, body = http("GET", SVC, token=False)
    assert status == 401 and body["reason"] == "Unauthorized" and body["kind"] == "Status"
    status, _ = http("GET", SVC, token=False, headers={"Authorization": "Bearer nope"})
    assert status == 401


def test_bearer_scheme_is_case_insensitive(http, api_server):
    """kube-apiserver lower-cases the scheme; the official client's in-cluster config sends `bearer <token>`."""
    for scheme in ("bearer", "BEARER", "Bearer"):
        status, _ = http("GET", SVC, token=False, headers={"Authorization": f"{scheme} {api_server.token}"})
        assert status == 200, scheme
    status, _ = http("GET", SVC, token=False, headers={"Authorization": f"Basic {api_server.token}"})
    assert status == 401


def test_status_codes(http):
    status, body = http("POST", SVC, raw=b"{not json")
    assert status == 400 and body["reason"] == "BadRequest"
    status, body = http("GET", "/api/v1/namespaces/default/widgets")
    assert status == 404
    status, _ = http("POST", SVC, _svc("dup"))
    assert status == 201
    status, body = http("POST", SVC, _svc("dup"))
    assert status == 409 and body["reason"] == "AlreadyExists" and body["message"] == 'services "dup" already exists'
    status, current = http("GET", SVC + "/dup")
    stale = dict(current)
    status, _ = http("PATCH", SVC + "/dup", {"metadata": {"labels": {"x": "1"}}},
                     ctype="application/merge-patch+json")
    assert status == 200
    status, body = http("PUT", SVC + "/dup", stale)
    assert status == 409 and body["reason"] == "Conflict"
    status, body = http("POST", SVC, raw=b'{"a":"' + b"x" * (3 * 1024 * 1024 + 10) + b'"}')
    assert status == 413
    status, body = http("POST", "/api/v1/namespaces/nope/services", _svc("x"))
    assert status == 404 and body["message"] == 'namespaces "nope" not found'
    http("DELETE", SVC + "/dup")


def test_invalid_is_422_with_causes_and_changes_nothing(http):
    _, before = http("GET", SVC)
    status, body = http("POST", SVC, _svc("np", type="NodePort", ports=[{"port": 80, "nodePort": 80}]))
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.ports[0].nodePort",
                                          "message": "Invalid value: 80: provided port is not in the valid range. "
                                                     "The range of valid ports is 30000-32767"}]
    _, after = http("GET", SVC)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_dry_run_creates_nothing(http):
    status, body = http("POST", SVC + "?dryRun=All", _svc("dry"))
    assert status == 201 and body["metadata"]["name"] == "dry"
    status, _ = http("GET", SVC + "/dry")
    assert status == 404


def test_paging_with_limit_and_continue(http):
    for i in range(5):
        http("POST", "/api/v1/namespaces/default/configmaps",
             {"metadata": {"name": f"page-{i}", "labels": {"paging": "yes"}}, "data": {"i": str(i)}})
    names, token = [], ""
    for _ in range(5):
        path = "/api/v1/namespaces/default/configmaps?labelSelector=paging%3Dyes&limit=2"
        if token:
            path += f"&continue={token}"
        _, page = http("GET", path)
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert names == [f"page-{i}" for i in range(5)]


def test_field_validation_strict_and_warn(http):
    status, body = http("POST", SVC + "?fieldValidation=Strict", {**_svc("fv"), "spec": {"ports": [{"port": 80}],
                                                                                          "bogus": 1}})
    assert status == 400 and 'unknown field "spec.bogus"' in body["message"]
    status, _ = http("GET", SVC + "/fv")
    assert status == 404


def test_watch_resumes_from_a_resource_version(http):
    status, first = http("POST", SVC, _svc("w-one"))
    rv = first["metadata"]["resourceVersion"]
    http("POST", SVC, _svc("w-two"))
    http("DELETE", SVC + "/w-one")
    status, body = http("GET", SVC + f"?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert status == 200
    events = [json.loads(line) for line in body.decode().splitlines() if line.strip()] \
        if isinstance(body, bytes) else [body]
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert seen == [("ADDED", "w-two"), ("DELETED", "w-one")]
    http("DELETE", SVC + "/w-two")


def test_watch_below_the_history_window_is_410_expired(make_server):
    srv = make_server("--network", "loopback", "--components=", "--history-revisions", "5",
                      "--history-seconds", "0.5")
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
    pool = urllib3.PoolManager(ssl_context=ctx)
    headers = {"Authorization": f"Bearer {srv.token}", "Content-Type": "application/json"}
    for i in range(20):
        pool.request("POST", srv.url + "/api/v1/namespaces/default/configmaps", headers=headers,
                     body=json.dumps({"metadata": {"name": f"c{i}"}}).encode())
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        resp = pool.request("GET", srv.url + "/api/v1/configmaps?watch=1&resourceVersion=2&timeoutSeconds=1",
                            headers=headers)
        line = json.loads(resp.data.decode().splitlines()[0])
        if line["type"] == "ERROR":
            break
        time.sleep(0.2)
    assert line["type"] == "ERROR"
    assert line["object"]["code"] == 410 and line["object"]["reason"] == "Expired"
