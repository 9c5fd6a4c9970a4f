"""The default ServiceAccount and the kube-root-ca.crt ConfigMap in every namespace (official Python client)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.rest import ApiException
from tests.conftest import module_server

pytestmark = pytest.mark.timeout(120)
server = module_server("--network", "loopback", "--components=controllers", "--no-agent")


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ApiException as err:
            if err.status != 404 or time.monotonic() > deadline:
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        time.sleep(0.05)


def test_every_namespace_gets_a_default_service_account_and_the_root_ca(server):
    client, api_client = server.client()
    core = client.CoreV1Api(api_client)
    ca = (server.data_dir / "pki" / "ca.crt").read_text()
    for ns in ("default", "kube-system"):
        assert eventually(lambda ns=ns: core.read_namespaced_service_account("default", ns))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")))
    assert eventually(lambda: core.read_namespaced_service_account("default", "team-a"))
    cm = eventually(lambda: core.read_namespaced_config_map("kube-root-ca.crt", "team-a"))
    assert cm.data == {"ca.crt": ca}

    core.delete_namespaced_service_account("default", "team-a")
    assert eventually(lambda: core.read_namespaced_service_account("default", "team-a"))
    core.patch_namespaced_config_map("kube-root-ca.crt", "team-a", {"data": {"ca.crt": "tampered"}})
    assert eventually(lambda: core.read_namespaced_config_map("kube-root-ca.crt", "team-a").data == {"ca.crt": ca})
