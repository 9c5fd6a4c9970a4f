"""Pods must not hold the cluster's keys (issue 14), netns mode: the data dir (token, CA key, store, other
pods) is not visible in a pod's mount namespace, and securityContext is applied as the kubelet and runc do:
runAsUser/runAsGroup/supplementalGroups/fsGroup, runAsNonRoot (the kubelet's refusal), readOnlyRootFilesystem,
allowPrivilegeEscalation=false (no_new_privs), capabilities drop/add on top of a runtime's default set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.netns.cluster import NetnsCluster
from tests.netns.conftest import netns_cluster

from nanokube.agent.security import CAPABILITY_NUMBERS, DEFAULT_CAPABILITIES


@pytest.fixture(scope="module")
def cluster() -> Iterator[NetnsCluster]:
    """Unlike the shared fixture, the data dir is outside /tmp (which every pod gets a private one of
    anyway), as the default /var/lib/nanokube is."""
    with netns_cluster(tmp_dir="/var/tmp") as c:
        yield c


def mask(names: list[str]) -> int:
    out = 0
    for name in names:
        out |= 1 << CAPABILITY_NUMBERS[name]
    return out


def probe_script(data_dir: Path) -> str:
    return f"""
echo "id: $(id -u) $(id -g) $(id -G)"
grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status
if cat {data_dir}/token >/dev/null 2>&1; then echo "token: readable"; else echo "token: hidden"; fi
if ls {data_dir}/pods >/dev/null 2>&1; then echo "pods: listed"; else echo "pods: hidden"; fi
if ls {data_dir}/pki/ca.key >/dev/null 2>&1; then echo "ca.key: visible"; else echo "ca.key: hidden"; fi
if touch /etc/nanokube-rootfs-probe 2>/dev/null; then echo "rootfs: writable"; rm -f /etc/nanokube-rootfs-probe;
else echo "rootfs: read-only"; fi
if touch /data/probe 2>/dev/null; then echo "volume: writable"; else echo "volume: read-only"; fi
echo "volume group: $(stat -c %g /data)"
exec sleep 3600
"""


def pod(name: str, data_dir: Path, pod_sc: dict | None = None, sc: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 1, "securityContext": pod_sc or {},
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", probe_script(data_dir)],
                        "securityContext": sc or {}, "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}


def report(cluster: NetnsCluster, name: str) -> dict[str, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = cluster.kubectl("logs", name, check=False).stdout
        if "volume group:" in out:
            return dict(line.split(":", 1) for line in out.splitlines() if ":" in line) | {"raw": out}
        time.sleep(0.2)
    raise AssertionError(f"no report from {name}: {cluster.kubectl('logs', name, '--previous', check=False)}")


def test_a_default_pod_sees_no_data_dir_and_has_the_default_capabilities(cluster: NetnsCluster) -> None:
    cluster.apply([pod("plain", cluster.data_dir)])
    r = report(cluster, "plain")
    assert r["id"].strip() == "0 0 0", r["raw"]
    assert r["token"].strip() == "hidden" and r["pods"].strip() == "hidden" and r["ca.key"].strip() == "hidden"
    assert int(r["CapBnd"], 16) == mask(list(DEFAULT_CAPABILITIES)) == int(r["CapEff"], 16)
    assert r["NoNewPrivs"].strip() == "0" and r["rootfs"].strip() == "writable"
    assert r["volume"].strip() == "writable"


def test_security_context_is_applied(cluster: NetnsCluster) -> None:
    cluster.apply([pod("locked", cluster.data_dir,
                       {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000], "fsGroup": 2000,
                        "runAsNonRoot": True},
                       {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})])
    r = report(cluster, "locked")
    uid, gid, *groups = r["id"].split()
    assert (uid, gid) == ("1000", "3000") and {"2000", "4000"} <= set(groups), r["raw"]
    assert int(r["CapEff"], 16) == 0  # a non-root user keeps none
    assert int(r["CapBnd"], 16) == mask(["CAP_NET_BIND_SERVICE"])
    assert r["NoNewPrivs"].strip() == "1"
    assert r["token"].strip() == "hidden" and r["pods"].strip() == "hidden"
    assert r["rootfs"].strip() == "read-only"
    assert r["volume"].strip() == "writable" and r["volume group"].strip() == "2000", r["raw"]  # fsGroup owns it
    # the host's root filesystem stays writable: the read-only flag was this pod's mount namespace's only
    probe = Path("/etc/nanokube-host-probe")
    probe.touch()
    probe.unlink()


def test_run_as_non_root_refuses_a_root_container_with_the_kubelets_message(cluster: NetnsCluster) -> None:
    cluster.apply([pod("rootish", cluster.data_dir, {"runAsNonRoot": True})])
    deadline = time.monotonic() + 30
    waiting: dict = {}
    while time.monotonic() < deadline:
        statuses = cluster.get("pod", "rootish").get("status", {}).get("containerStatuses") or []
        waiting = (statuses[0].get("state") or {}).get("waiting") or {} if statuses else {}
        if waiting.get("reason") == "CreateContainerConfigError":
            break
        time.sleep(0.2)
    uid = cluster.get("pod", "rootish")["metadata"]["uid"]
    assert waiting == {"reason": "CreateContainerConfigError",
                       "message": f'container has runAsNonRoot and image will run as root (pod: '
                                  f'"rootish_default({uid})", container: c)'}
