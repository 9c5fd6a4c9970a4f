"""The example operator, tested with kopf's own KopfRunner against a real (nanokube) cluster per session.

    pip install nanokube kopf kubernetes pytest
    pytest examples/kopf-operator
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

OPERATOR = str(Path(__file__).with_name("replicator.py"))  # not operator.py: that name shadows the stdlib


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {check}"
        time.sleep(0.1)
    return value


def configmap(cluster: Any, name: str, namespace: str) -> dict | None:
    proc = cluster.kubectl("get", "configmap", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


@pytest.fixture
def target_namespaces(nanokube_cluster: Any, nanokube_namespace: str) -> Iterator[list[str]]:
    names = [f"{nanokube_namespace}-a", f"{nanokube_namespace}-b"]
    for name in names:
        nanokube_cluster.kubectl("create", "namespace", name)
    yield names
    for name in names:
        nanokube_cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_configmap_is_replicated_updated_and_removed(nanokube_cluster: Any, nanokube_namespace: str,
                                                      target_namespaces: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(nanokube_cluster.kubeconfig))
    source = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "settings", "annotations": {
                  "example.nanokube.dev/replicate-to": ",".join(target_namespaces)}},
              "data": {"colour": "blue"}}
    with KopfRunner(["run", "--all-namespaces", "--standalone", "--verbose", OPERATOR]) as runner:
        nanokube_cluster.apply(source, namespace=nanokube_namespace)
        for target in target_namespaces:
            copy = eventually(lambda t=target: configmap(nanokube_cluster, "settings", t))
            assert copy["data"] == {"colour": "blue"}
            assert copy["metadata"]["labels"] == {"example.nanokube.dev/replica-of": nanokube_namespace}

        source["data"] = {"colour": "green"}
        nanokube_cluster.apply(source, namespace=nanokube_namespace)
        for target in target_namespaces:
            eventually(lambda t=target: (configmap(nanokube_cluster, "settings", t) or {}).get("data")
                       == {"colour": "green"})

        nanokube_cluster.kubectl("delete", "configmap", "settings", "-n", nanokube_namespace)
        for target in target_namespaces:
            eventually(lambda t=target: configmap(nanokube_cluster, "settings", t) is None)

    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert f"replicated {nanokube_namespace}/settings to {target_namespaces[0]}" in runner.output
