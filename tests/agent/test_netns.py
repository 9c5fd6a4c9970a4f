"""netns mode for real, inside a fresh network + mount namespace so nothing touches the host's network."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"), reason="needs root, unshare and ip")]

SCENARIO = Path(__file__).with_name("netns_scenario.py")


def test_echo_pods_in_their_own_namespaces(tmp_path):
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", sys.executable,
                             str(SCENARIO), str(tmp_path)], capture_output=True, text=True, timeout=60,
                            cwd=root, env={**os.environ, "PYTHONPATH": str(root / "src")})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # three pods, each answering with its own name from its own IP, all on 0.0.0.0:8080
    assert [a["pod"] for a in out["answers"]] == ["echo-0", "echo-1", "echo-2"]
    assert [a["podIP"] for a in out["answers"]] == out["ips"] and len(set(out["ips"])) == 3
    assert all(ip.startswith("10.244.0.") for ip in out["ips"])
    assert [a["hostname"] for a in out["answers"]] == ["echo-0", "echo-1", "echo-2"]
    assert all(a["clientIP"] == "10.244.0.1" for a in out["answers"])
    assert "0.0.0.0:8080" in out["listen"]
    # /etc files, hostname, volumes (configMap read-only, emptyDir at a path missing on the host)
    log = out["vol_log"]
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in log[0]
    assert "nameserver 10.96.0.10" in log and "options ndots:5" in log
    assert "host=custom" in log and "hello" in log and "ro" in log
    assert out["mount_point_on_host_while_running"]
    # nothing left behind
    assert out["escaped_seen"] == 1
    assert out["left_netns"] == [] and out["left_links"] == 0 and out["left_processes"] == []
    assert not out["mount_point_on_host_after"]
    assert out["bridge_created"] and not out["bridge_left"]
