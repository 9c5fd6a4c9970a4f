"""What a new Pod looks like (status, admission defaults) and how errors are written, through the official
Python client, kubectl and raw HTTP, compared with kube-apiserver v1.32."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes.client.rest import ApiException
from tests.apiserver.helpers_http import Http


def _pod(client, name, resources=None):
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name),
                        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox",
                                                                             resources=resources)]))


def test_created_pod_is_pending_with_qos_tolerations_and_priority(api_server):
    client, api_client = api_server.client()
    core = client.CoreV1Api(api_client)
    from kubernetes import watch

    start = core.list_namespaced_pod("default").metadata.resource_version
    created = core.create_namespaced_pod("default", _pod(client, "pending-1"))
    assert created.status.phase == "Pending" and created.status.qos_class == "BestEffort"
    tolerations = {(t.key, t.operator, t.effect, t.toleration_seconds) for t in created.spec.tolerations}
    assert tolerations == {("node.kubernetes.io/not-ready", "Exists", "NoExecute", 300),
                           ("node.kubernetes.io/unreachable", "Exists", "NoExecute", 300)}
    assert created.spec.priority == 0 and created.spec.preemption_policy == "PreemptLowerPriority"
    assert created.spec.service_account_name == "default"
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_pod, "default", resource_version=start, timeout_seconds=10):
        assert ev["type"] == "ADDED" and ev["object"].metadata.name == "pending-1"
        assert ev["object"].status.phase == "Pending"
        w.stop()


def test_qos_class_follows_requests_and_limits(api_server):
    client, api_client = api_server.client()
    core = client.CoreV1Api(api_client)
    limits = {"cpu": "500m", "memory": "64Mi"}
    guaranteed = core.create_namespaced_pod("default", _pod(client, "qos-g", client.V1ResourceRequirements(
        limits=limits)))
    assert guaranteed.status.qos_class == "Guaranteed" and guaranteed.spec.containers[0].resources.requests == limits
    burstable = core.create_namespaced_pod("default", _pod(client, "qos-b", client.V1ResourceRequirements(
        requests={"cpu": "100m"})))
    assert burstable.status.qos_class == "Burstable"


def test_errors_carry_details_and_end_with_a_newline(api_server):
    http = Http(api_server)
    resp = http.pool.request("GET", http.base + "/api/v1/namespaces/default/pods/nope",
                             headers={"Authorization": http.auth})
    assert resp.status == 404 and resp.data.endswith(b"}\n")
    assert json.loads(resp.data)["details"] == {"name": "nope", "kind": "pods"}
    resp = http.pool.request("GET", http.base + "/api/v1/namespaces/default/nothinghere",
                             headers={"Authorization": http.auth})
    body = json.loads(resp.data)
    assert resp.status == 404 and body["details"] == {} and resp.data.endswith(b"\n")


def test_patch_that_duplicates_a_node_port_is_invalid_and_changes_nothing(api_server):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dup-np"},
           "spec": {"type": "NodePort", "selector": {"app": "x"},
                    "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}
    api_server.kubectl("create", "-f", "-", input=yaml.safe_dump(svc))
    before = json.loads(api_server.kubectl("get", "svc", "dup-np", "-o", "json").stdout)
    taken = before["spec"]["ports"][0]["nodePort"]
    out = api_server.kubectl("patch", "svc", "dup-np", "-p",
                             json.dumps({"spec": {"ports": [{"port": 81, "nodePort": taken}]}}), check=False)
    assert out.returncode != 0
    assert f'spec.ports[1].nodePort: Duplicate value: {taken}' in out.stderr, out.stderr
    after = json.loads(api_server.kubectl("get", "svc", "dup-np", "-o", "json").stdout)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_not_found_from_the_python_client_has_details(api_server):
    client, api_client = api_server.client()
    with pytest.raises(ApiException) as info:
        client.CoreV1Api(api_client).read_namespaced_config_map("absent", "default")
    assert json.loads(info.value.body)["details"]["name"] == "absent"
