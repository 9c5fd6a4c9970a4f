"""services/proxy and pods/proxy through `kubectl proxy`, and the links `kubectl cluster-info` prints."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from tests.conftest import Server
from tests.loopback.conftest import echo_deployment, manifest, service
from tests.polling import eventually

from nanokube.testing.ports import free_port


@pytest.fixture(scope="module")
def proxy(cluster: Server) -> Iterator[str]:
    cluster.apply(manifest(echo_deployment("pweb", 1), service("pweb", {"app": "pweb"},
                                                                [{"name": "web", "port": 80, "targetPort": 8080}])))
    cluster.kubectl("rollout", "status", "deployment/pweb", "--timeout=60s", timeout=90)
    port = free_port()
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "proxy", f"--port={port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"Starting to serve")
        url = f"http://127.0.0.1:{port}"
        eventually(lambda: fetch(f"{url}/api/v1/namespaces/default/services/pweb/proxy/")[0] == 200, 30,
                 what="the Service's endpoint to be published")
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_service_proxy_by_port_name_and_number(proxy: str) -> None:
    for name in ("pweb:80", "pweb:web", "http:pweb:80", "pweb"):
        code, body = fetch(f"{proxy}/api/v1/namespaces/default/services/{name}/proxy/some/path?q=1")
        assert code == 200, (name, body)
        answer = json.loads(body)
        assert answer["path"] == "/some/path?q=1" and answer["pod"].startswith("pweb-")


def test_pod_proxy_and_redirect(cluster: Server, proxy: str) -> None:
    pod = cluster.kubectl("get", "pods", "-l", "app=pweb", "-o", "jsonpath={.items[0].metadata.name}").stdout
    code, body = fetch(f"{proxy}/api/v1/namespaces/default/pods/{pod}:8080/proxy/x")
    assert code == 200 and json.loads(body)["pod"] == pod
    code, body = fetch(f"{proxy}/api/v1/namespaces/default/services/pweb:80/proxy")  # followed to .../proxy/
    assert code == 200 and json.loads(body)["path"] == "/"


def test_missing_service_is_a_not_found_status(proxy: str) -> None:
    code, body = fetch(f"{proxy}/api/v1/namespaces/default/services/ghost/proxy/")
    status = json.loads(body)
    assert code == 404 and status["reason"] == "NotFound" and status["details"]["name"] == "ghost"


def test_cluster_info_links_resolve(cluster: Server, proxy: str) -> None:
    out = cluster.kubectl("cluster-info").stdout
    link = next(word for word in out.split() if "/proxy" in word)
    path = link.split("://", 1)[1].split("/", 1)[1]
    code, body = fetch(f"{proxy}/{path}/")
    assert code == 503, body  # kube-dns's "dns" port is UDP: a clear Status, not a 404
    assert json.loads(body)["reason"] == "ServiceUnavailable"
