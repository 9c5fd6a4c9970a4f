"""Pod volumes through a real netns-mode server: configMap (items, defaultMode, live update), secret, downwardAPI,
an emptyDir shared by two containers, hostPath with a subPath and a readOnly mount, seen from inside the pod."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.netns.cluster import NetnsCluster

SECRET_VALUE = "s3cr3t-" + base64.b32encode(os.urandom(10)).decode().lower()


@pytest.fixture(scope="module")
def host_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nk-e2e-hostpath-"))
    (path / "sub").mkdir()
    (path / "sub" / "from-host").write_text("host file\n")
    (path / "top").write_text("top\n")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def manifests(host: Path) -> list[dict]:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"},
          "data": {"greeting": "hello v1", "unused": "not projected"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secret"},
              "stringData": {"password": SECRET_VALUE, "user": "admin"}}
    sleeper = ["sh", "-c", "sleep 3600"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vols", "labels": {"app": "vols", "tier": "x"}},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "volumes": [
                        {"name": "config", "configMap": {"name": "app-config", "defaultMode": 0o440,
                                                         "items": [{"key": "greeting", "path": "conf/greet.txt"}]}},
                        {"name": "secret", "secret": {"secretName": "app-secret", "defaultMode": 0o400}},
                        {"name": "podinfo", "downwardAPI": {"items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                        {"name": "scratch", "emptyDir": {}},
                        {"name": "host", "hostPath": {"path": str(host), "type": "Directory"}}],
                    "containers": [
                        {"name": "main", "image": "busybox", "command": sleeper, "volumeMounts": [
                            {"name": "config", "mountPath": "/tmp/config"},
                            {"name": "secret", "mountPath": "/tmp/secret"},
                            {"name": "podinfo", "mountPath": "/tmp/podinfo"},
                            {"name": "scratch", "mountPath": "/tmp/scratch"},
                            {"name": "host", "mountPath": "/tmp/host"},
                            {"name": "host", "mountPath": "/tmp/host-ro", "readOnly": True},
                            {"name": "host", "mountPath": "/tmp/sub", "subPath": "sub"}]},
                        {"name": "writer", "image": "busybox",
                         "command": ["sh", "-c", "echo from-writer > /tmp/shared/note; sleep 3600"],
                         "volumeMounts": [{"name": "scratch", "mountPath": "/tmp/shared"},
                                          {"name": "config", "mountPath": "/tmp/writer-marker"}]}]}}
    return [cm, secret, pod]


@pytest.fixture(scope="module")
def pod(cluster: NetnsCluster, host_dir: Path) -> str:
    cluster.apply(manifests(host_dir))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/vols", "--timeout=30s")
    return "vols"


def in_container(cluster: NetnsCluster, marker: str, *argv: str, check: bool = True,
                 ) -> subprocess.CompletedProcess[str]:
    """Run a command in the mount namespace of the pod's container that has `marker` (a mount point of its own)."""
    box = cluster.pod("vols")
    for pid in box.pids:
        if os.path.exists(f"/proc/{pid}/root{marker}"):
            proc = subprocess.run(["nsenter", "-t", str(pid), "-n", "-m", "-u", "--", *argv],
                                  capture_output=True, text=True, timeout=10)
            if check and proc.returncode != 0:
                raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
            return proc
    raise AssertionError(f"no container of pod vols has {marker}")


def main(cluster: NetnsCluster, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return in_container(cluster, "/tmp/podinfo", *argv, check=check)


def mode(cluster: NetnsCluster, path: str) -> str:
    return main(cluster, "stat", "-L", "-c", "%a", path).stdout.strip()


def test_configmap_items_map_a_key_to_a_custom_path_with_default_mode(cluster: NetnsCluster, pod: str) -> None:
    assert main(cluster, "cat", "/tmp/config/conf/greet.txt").stdout == "hello v1"
    assert mode(cluster, "/tmp/config/conf/greet.txt") == "440"
    listed = main(cluster, "ls", "/tmp/config").stdout.split()
    assert listed == ["conf"]  # only the keys listed in items, nothing for "unused"


def test_secret_volume_has_every_key_with_default_mode(cluster: NetnsCluster, pod: str) -> None:
    assert main(cluster, "cat", "/tmp/secret/password").stdout == SECRET_VALUE
    assert main(cluster, "cat", "/tmp/secret/user").stdout == "admin"
    assert sorted(main(cluster, "ls", "/tmp/secret").stdout.split()) == ["password", "user"]
    assert mode(cluster, "/tmp/secret/password") == "400" and mode(cluster, "/tmp/secret/user") == "400"


def test_downward_api_volume_has_labels_and_name(cluster: NetnsCluster, pod: str) -> None:
    assert main(cluster, "cat", "/tmp/podinfo/name").stdout == "vols"
    assert main(cluster, "cat", "/tmp/podinfo/labels").stdout == 'app="vols"\ntier="x"'


def test_empty_dir_is_shared_by_the_containers_of_the_pod(cluster: NetnsCluster, pod: str) -> None:
    assert main(cluster, "cat", "/tmp/scratch/note").stdout == "from-writer\n"
    main(cluster, "sh", "-c", "echo from-main > /tmp/scratch/reply")
    assert in_container(cluster, "/tmp/writer-marker", "cat", "/tmp/shared/reply").stdout == "from-main\n"


def test_host_path_and_sub_path(cluster: NetnsCluster, pod: str, host_dir: Path) -> None:
    assert main(cluster, "cat", "/tmp/host/top").stdout == "top\n"
    assert main(cluster, "cat", "/tmp/sub/from-host").stdout == "host file\n"
    assert "top" not in main(cluster, "ls", "/tmp/sub").stdout.split()  # the subPath is the mount's root
    main(cluster, "sh", "-c", "echo from-pod > /tmp/sub/written")
    assert (host_dir / "sub" / "written").read_text() == "from-pod\n"


def test_writing_into_a_read_only_mount_fails(cluster: NetnsCluster, pod: str, host_dir: Path) -> None:
    assert main(cluster, "cat", "/tmp/host-ro/top").stdout == "top\n"
    attempt = main(cluster, "sh", "-c", "echo nope > /tmp/host-ro/nope", check=False)
    assert attempt.returncode != 0 and "Read-only file system" in attempt.stderr
    assert not (host_dir / "nope").exists()


def test_configmap_update_reaches_the_mounted_file(cluster: NetnsCluster, pod: str) -> None:
    cluster.kubectl("patch", "configmap", "app-config", "--type=merge", "-p", '{"data":{"greeting":"hello v2"}}')
    deadline = time.monotonic() + 10
    seen = ""
    while time.monotonic() < deadline:
        seen = main(cluster, "cat", "/tmp/config/conf/greet.txt").stdout
        if seen == "hello v2":
            break
        time.sleep(0.1)
    assert seen == "hello v2"
    assert mode(cluster, "/tmp/config/conf/greet.txt") == "440"


def test_pod_label_change_reaches_the_downward_api_file(cluster: NetnsCluster, pod: str) -> None:
    cluster.kubectl("label", "pod", "vols", "tier=y", "--overwrite")
    deadline = time.monotonic() + 5
    seen = ""
    while time.monotonic() < deadline:
        seen = main(cluster, "cat", "/tmp/podinfo/labels").stdout
        if seen == 'app="vols"\ntier="y"':
            break
        time.sleep(0.1)
    assert seen == 'app="vols"\ntier="y"'


def test_secret_value_never_appears_in_the_server_log(cluster: NetnsCluster, pod: str) -> None:
    logs = cluster.logs()
    assert logs  # the server does log
    assert SECRET_VALUE not in logs
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in logs
