"""The default ServiceAccount and the kube-root-ca.crt ConfigMap in every namespace (official Python client)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.rest import ApiException
from tests.conftest import module_server
from tests.polling import eventually

pytestmark = pytest.mark.timeout(120)
server = module_server("--network", "loopback", "--components=controllers", "--no-agent")


def present(read: Callable[[], Any]) -> Callable[[], Any]:
    """`read`, with a 404 meaning "not there yet"."""
    def check() -> Any:
        try:
            return read()
        except ApiException as err:
            if err.status != 404:
                raise
            return None
    return check


def test_every_namespace_gets_a_default_service_account_and_the_root_ca(server):
    client, api_client = server.client()
    core = client.CoreV1Api(api_client)
    ca = (server.data_dir / "pki" / "ca.crt").read_text()
    for ns in ("default", "kube-system"):
        assert eventually(present(lambda ns=ns: core.read_namespaced_service_account("default", ns)))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")))
    assert eventually(present(lambda: core.read_namespaced_service_account("default", "team-a")))
    cm = eventually(present(lambda: core.read_namespaced_config_map("kube-root-ca.crt", "team-a")))
    assert cm.data == {"ca.crt": ca}

    core.delete_namespaced_service_account("default", "team-a")
    assert eventually(present(lambda: core.read_namespaced_service_account("default", "team-a")))
    core.patch_namespaced_config_map("kube-root-ca.crt", "team-a", {"data": {"ca.crt": "tampered"}})
    assert eventually(lambda: core.read_namespaced_config_map("kube-root-ca.crt", "team-a").data == {"ca.crt": ca})
