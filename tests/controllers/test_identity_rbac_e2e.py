"""ServiceAccount tokens and RBAC through the real kubectl and the official Python client: `kubectl create
token`, `kubectl auth whoami`, `kubectl auth can-i [--as] [--list]`, tokens the API accepts and RBAC enforces."""

from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException
from tests.conftest import module_server
from tests.polling import eventually

pytestmark = pytest.mark.timeout(120)
server = module_server("--network", "loopback", "--components=controllers", "--no-agent")
ROBOT = "system:serviceaccount:default:robot"


def with_token(server, token: str):  # type: ignore[no-untyped-def]
    from kubernetes import client

    config = client.Configuration()
    config.host = server.url
    config.ssl_ca_cert = str(server.data_dir / "pki" / "ca.crt")
    config.api_key = {"authorization": "Bearer " + token}
    return client.ApiClient(config)


def kubectl_ok(server, *args: str) -> str:
    return server.kubectl(*args).stdout


def test_tokens_identify_service_accounts_and_rbac_decides(server):
    kubectl_ok(server, "create", "serviceaccount", "robot")
    token = kubectl_ok(server, "create", "token", "robot", "--duration=15m").strip()
    assert token.count(".") == 2
    whoami = kubectl_ok(server, "--token", token, "auth", "whoami")
    assert ROBOT in whoami and "system:serviceaccounts:default" in whoami
    denied = server.kubectl("--token", token, "get", "pods", check=False)
    assert denied.returncode != 0
    assert f'pods is forbidden: User "{ROBOT}" cannot list resource "pods" in API group "" in the namespace ' \
           '"default"' in denied.stderr
    assert server.kubectl("auth", "can-i", "list", "pods", f"--as={ROBOT}", check=False).stdout.strip() == "no"
    assert kubectl_ok(server, "auth", "can-i", "create", "deployments").strip() == "yes"  # the admin token

    kubectl_ok(server, "create", "rolebinding", "robot-view", "--clusterrole=view", "--serviceaccount=default:robot")
    assert kubectl_ok(server, "auth", "can-i", "list", "pods", f"--as={ROBOT}").strip() == "yes"
    assert server.kubectl("auth", "can-i", "delete", "pods", f"--as={ROBOT}", check=False).stdout.strip() == "no"
    assert "No resources found" in server.kubectl("--token", token, "get", "pods").stderr
    rules = kubectl_ok(server, "--token", token, "auth", "can-i", "--list")
    assert "pods " in rules and "[get list watch]" in rules

    from kubernetes import client

    core = client.CoreV1Api(with_token(server, token))  # the official client with the ServiceAccount's token
    assert core.list_namespaced_pod("default").items == []
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert info.value.status == 403

    tampered = client.CoreV1Api(with_token(server, token[:-4] + "AAAA"))
    with pytest.raises(ApiException) as info:
        tampered.list_namespaced_pod("default")
    assert info.value.status == 401


def test_token_request_limits_and_deleted_accounts(server):
    kubectl_ok(server, "create", "serviceaccount", "shortlived")
    out = server.kubectl("create", "token", "shortlived", "--duration=5m", check=False)
    assert out.returncode != 0 and "may not specify a duration less than 10 minutes" in out.stderr
    token = kubectl_ok(server, "create", "token", "shortlived").strip()
    assert "shortlived" in kubectl_ok(server, "--token", token, "auth", "whoami")
    kubectl_ok(server, "delete", "serviceaccount", "shortlived")
    eventually(lambda: server.kubectl("--token", token, "auth", "whoami", check=False).returncode != 0, 10,
               what="the token of a deleted ServiceAccount refused")


def claims_of(token: str) -> dict:
    import base64
    import json

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_tokens_are_bound_and_expiring(server):
    """A token expires when TokenRequest says, carries its audience, and one bound to a pod dies with the pod."""
    import json
    import time

    kubectl_ok(server, "create", "serviceaccount", "binder")
    issued = json.loads(kubectl_ok(server, "create", "token", "binder", "--duration=20m", "-o", "json"))
    claims = claims_of(issued["status"]["token"])
    assert abs(claims["exp"] - time.time() - 1200) < 60 and claims["exp"] - claims["iat"] == 1200
    assert claims["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert claims["sub"] == "system:serviceaccount:default:binder"

    other = kubectl_ok(server, "create", "token", "binder", "--audience=vault").strip()
    assert claims_of(other)["aud"] == ["vault"]
    assert server.kubectl("--token", other, "auth", "whoami", check=False).returncode != 0  # not for the API

    server.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder"},
                  "spec": {"serviceAccountName": "binder", "containers": [{"name": "c", "image": "busybox"}]}})
    bound = kubectl_ok(server, "create", "token", "binder", "--bound-object-kind=Pod",
                       "--bound-object-name=holder").strip()
    assert claims_of(bound)["kubernetes.io"]["pod"]["name"] == "holder"
    assert "system:serviceaccount:default:binder" in kubectl_ok(server, "--token", bound, "auth", "whoami")
    kubectl_ok(server, "delete", "pod", "holder", "--grace-period=0", "--force")
    eventually(lambda: server.kubectl("--token", bound, "auth", "whoami", check=False).returncode != 0, 10,
               what="the token of a deleted pod refused")
