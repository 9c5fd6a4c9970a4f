"""Server-side apply and managedFields through the real kubectl (v1.32), checked against what kube-apiserver
writes (the managedFields JSON of docs' examples, conflict messages, ownership transfers)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import yaml

DEPLOYMENT_FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
            ".": {}, "f:image": {}, "f:name": {},
            "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}}}},
}


def deployment(name: str, replicas: int = 2, image: str = "nginx:1.27", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, **spec,
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "nginx", "image": image,
                                                           "ports": [{"containerPort": 80}]}]}}}}


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                                          {"name": "https", "port": 443, "targetPort": 8443}]}}


def ssa(server, manifest: dict[str, Any], *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return server.kubectl("apply", "--server-side", "-f", "-", *extra, input=yaml.safe_dump(manifest), check=check)


def get(server, kind: str, name: str) -> dict[str, Any]:
    return json.loads(server.kubectl("get", kind, name, "-o", "json", "--show-managed-fields").stdout)


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def test_reapplying_a_deployment_changes_nothing(api_server) -> None:
    for _ in range(3):
        ssa(api_server, deployment("ssa-web"))
    obj = get(api_server, "deployment", "ssa-web")
    assert obj["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert obj["metadata"]["generation"] == 1
    (entry,) = obj["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == ("kubectl", "Apply", "apps/v1")
    assert json.dumps(entry["fieldsV1"]) == json.dumps(DEPLOYMENT_FIELDS)
    rv = obj["metadata"]["resourceVersion"]
    assert "serverside-applied" in ssa(api_server, deployment("ssa-web")).stdout
    assert get(api_server, "deployment", "ssa-web")["metadata"]["resourceVersion"] == rv


def test_service_without_protocol_applies_twice(api_server) -> None:
    ssa(api_server, service("ssa-svc"))
    ssa(api_server, service("ssa-svc"))
    obj = get(api_server, "service", "ssa-svc")
    assert [(p["port"], p["protocol"]) for p in obj["spec"]["ports"]] == [(80, "TCP"), (443, "TCP")]
    (entry,) = obj["metadata"]["managedFields"]
    assert entry["fieldsV1"] == {"f:spec": {"f:ports": {
        'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}, "f:targetPort": {}},
        'k:{"port":443,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}, "f:targetPort": {}}},
        "f:selector": {}}}


def test_server_side_over_client_side_apply_migrates_ownership(api_server) -> None:
    api_server.apply(service("csa-svc"))
    before = entries(get(api_server, "service", "csa-svc"))
    assert ("kubectl-client-side-apply", "Update") in before
    ssa(api_server, service("csa-svc"))
    obj = get(api_server, "service", "csa-svc")
    assert [p["port"] for p in obj["spec"]["ports"]] == [80, 443]
    owners = entries(obj)
    assert ("kubectl-client-side-apply", "Update") not in owners
    assert ("kubectl", "Apply") in owners
    last = owners[("kubectl-last-applied", "Apply")]["fieldsV1"]
    assert last == {"f:metadata": {"f:annotations": {
        "f:kubectl.kubernetes.io/last-applied-configuration": {}}}}
    # dropping a port from the manifest now prunes it: kubectl owns what client-side apply set
    smaller = service("csa-svc")
    smaller["spec"]["ports"] = smaller["spec"]["ports"][:1]
    ssa(api_server, smaller)
    assert [p["port"] for p in get(api_server, "service", "csa-svc")["spec"]["ports"]] == [80]


def test_conflicting_managers_get_a_409_unless_forced(api_server) -> None:
    ssa(api_server, deployment("ssa-conflict"), "--field-manager=alpha")
    out = ssa(api_server, deployment("ssa-conflict", replicas=3), "--field-manager=beta", check=False)
    assert out.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "alpha": .spec.replicas' in out.stderr
    ssa(api_server, deployment("ssa-conflict", replicas=2), "--field-manager=beta")
    owners = entries(get(api_server, "deployment", "ssa-conflict"))
    assert "f:replicas" in owners[("alpha", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:replicas" in owners[("beta", "Apply")]["fieldsV1"]["f:spec"]
    ssa(api_server, deployment("ssa-conflict", replicas=4), "--field-manager=beta", "--force-conflicts")
    obj = get(api_server, "deployment", "ssa-conflict")
    assert obj["spec"]["replicas"] == 4
    assert "f:replicas" not in entries(obj)[("alpha", "Apply")]["fieldsV1"]["f:spec"]


def test_updates_own_fields_and_conflict_with_apply(api_server) -> None:
    ssa(api_server, deployment("ssa-update"), "--field-manager=alpha")
    api_server.kubectl("scale", "deployment/ssa-update", "--replicas=5")
    api_server.kubectl("set", "image", "deployment/ssa-update", "nginx=nginx:1.28")
    owners = entries(get(api_server, "deployment", "ssa-update"))
    image_owner = [m for (m, op), e in owners.items() if op == "Update" and "f:image" in json.dumps(e["fieldsV1"])]
    assert image_owner == ["kubectl-set"]
    out = ssa(api_server, deployment("ssa-update"), "--field-manager=alpha", check=False)
    assert out.returncode != 0
    assert 'conflict with "kubectl-set" using apps/v1' in out.stderr
    assert '.spec.template.spec.containers[name="nginx"].image' in out.stderr


def test_create_and_patch_record_their_managers(api_server) -> None:
    api_server.kubectl("create", "-f", "-", input=yaml.safe_dump(service("mf-created")))
    assert set(entries(get(api_server, "service", "mf-created"))) == {("kubectl-create", "Update")}
    api_server.kubectl("label", "service", "mf-created", "team=a")
    api_server.kubectl("patch", "service", "mf-created", "-p", '{"metadata":{"annotations":{"x":"y"}}}')
    owners = entries(get(api_server, "service", "mf-created"))
    assert owners[("kubectl-label", "Update")]["fieldsV1"] == {"f:metadata": {"f:labels": {".": {}, "f:team": {}}}}
    assert owners[("kubectl-patch", "Update")]["fieldsV1"] == {
        "f:metadata": {"f:annotations": {".": {}, "f:x": {}}}}


def test_removing_a_field_from_the_manifest_removes_it(api_server) -> None:
    ssa(api_server, deployment("ssa-prune", minReadySeconds=5), "--field-manager=alpha")
    ssa(api_server, deployment("ssa-prune"), "--field-manager=alpha")
    assert "minReadySeconds" not in get(api_server, "deployment", "ssa-prune")["spec"]
    ssa(api_server, deployment("ssa-prune", minReadySeconds=5), "--field-manager=alpha")
    ssa(api_server, deployment("ssa-prune", minReadySeconds=5), "--field-manager=beta")
    ssa(api_server, deployment("ssa-prune"), "--field-manager=alpha")
    assert get(api_server, "deployment", "ssa-prune")["spec"]["minReadySeconds"] == 5


def test_apply_body_with_managed_fields_is_rejected(api_server) -> None:
    manifest = service("ssa-bad")
    manifest["metadata"]["managedFields"] = [{"manager": "x", "operation": "Apply"}]
    out = ssa(api_server, manifest, check=False)
    assert out.returncode != 0 and "metadata.managedFields must be nil" in out.stderr


def test_update_records_its_manager_from_field_manager_or_the_user_agent(api_server) -> None:
    """PUT records an Update entry: kubectl replace sends ?fieldManager=kubectl-replace; the official client sends
    none, so the manager is its User-Agent up to the first '/' (managerOrUserAgent)."""
    api_server.kubectl("create", "-f", "-", input=yaml.safe_dump(service("mf-replaced")))
    replaced = get(api_server, "service", "mf-replaced")
    replaced["metadata"].pop("managedFields")
    replaced["spec"]["selector"] = {"app": "other"}
    api_server.kubectl("replace", "-f", "-", input=json.dumps(replaced))
    owners = entries(get(api_server, "service", "mf-replaced"))
    assert owners[("kubectl-replace", "Update")]["fieldsV1"] == {"f:spec": {"f:selector": {}}}  # an atomic map

    client, api_client = api_server.client()
    core = client.CoreV1Api(api_client)
    cm = core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="mf-by-client"), data={"a": "1"}))
    cm.data["b"] = "2"
    core.replace_namespaced_config_map("mf-by-client", "default", cm)
    agent = api_client.user_agent.split("/", 1)[0]
    fields = {(e.manager, e.operation): e.fields_v1 for e in
              core.read_namespaced_config_map("mf-by-client", "default").metadata.managed_fields}
    assert set(fields) == {(agent, "Update")}
    assert fields[(agent, "Update")] == {"f:data": {".": {}, "f:a": {}, "f:b": {}}}
