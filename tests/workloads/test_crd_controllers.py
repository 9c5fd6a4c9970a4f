"""Controllers and custom resources: the garbage collector follows ownerReferences to and from custom objects,
and deleting a namespace deletes the custom objects in it (both find custom resources through discovery)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from tests.conftest import module_server
from tests.polling import eventually

HERE = Path(__file__).parent
GROUP = "stable.example.com"
server = module_server("--network", "loopback", "--components=controllers", "--no-agent")


def _exists(server, *args: str) -> bool:
    return server.kubectl("get", *args, check=False).returncode == 0


def _crontab(name: str, namespace: str = "default", owner: dict | None = None) -> dict:
    md: dict = {"name": name, "namespace": namespace}
    if owner is not None:
        md["ownerReferences"] = [owner]
    return {"apiVersion": f"{GROUP}/v1", "kind": "CronTab", "metadata": md, "spec": {"cronSpec": "* * * * *"}}


def _ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"]}


def test_garbage_collection_and_namespace_deletion_reach_custom_objects(server) -> None:
    server.apply(yaml.safe_load((HERE / "crontab_crd.yaml").read_text()))
    server.kubectl("wait", "--for", "condition=established", f"crd/crontabs.{GROUP}", "--timeout=30s")
    eventually(lambda: server.kubectl("apply", "-f", "-", check=False,
                                      input=yaml.safe_dump(_crontab("owner"))).returncode == 0, timeout=30)
    owner = json.loads(server.kubectl("get", "crontab", "owner", "-o", "json").stdout)
    server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned", "ownerReferences": [
        _ref(owner)]}, "data": {"a": "b"}})
    parent = json.loads(server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "parent"}},
                                     "-o", "json"))
    server.apply(_crontab("child", owner=_ref(parent)))

    server.kubectl("delete", "crontab", "owner")
    eventually(lambda: not _exists(server, "configmap", "owned"), timeout=30)  # a dependent of a custom owner
    server.kubectl("delete", "configmap", "parent")
    eventually(lambda: not _exists(server, "crontab", "child"), timeout=30)  # a custom dependent

    server.kubectl("create", "namespace", "doomed")
    server.apply(_crontab("inside", namespace="doomed"))
    server.kubectl("delete", "namespace", "doomed", "--wait=false")
    eventually(lambda: not _exists(server, "namespace", "doomed"), timeout=30)
    assert json.loads(server.kubectl("get", "crontabs", "-A", "-o", "json").stdout)["items"] == []
