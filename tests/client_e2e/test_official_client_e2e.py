"""The official Python client's own e2e tests (kubernetes-client/python, kubernetes/e2e_test: client, apps, watch,
informer, utils) run unchanged against a nanokube server in loopback mode.

Their code is not part of this repository: point NANOKUBE_CLIENT_PYTHON at a checkout of kubernetes-client/python
(any recent master; the installed `kubernetes` package is what they exercise) and run

    NANOKUBE_CLIENT_PYTHON=~/src/python pytest -q tests/client_e2e

The tests are copied to a scratch directory (they import themselves as `kubernetes.e2e_test`, which a conftest
there aliases, and where it works around a race of the client's informer) and run in a subprocess with
KUBECONFIG naming the server. Every test must pass except the ones listed in NEEDS_OTHER_ISSUES: the two
port-forward tests, which need what only netns mode gives a pod and pass there
(test_port_forward_tests_in_netns_mode, as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tests.conftest import start_server
from tests.netns.cluster import SKIP_REASON as NETNS_SKIP
from tests.netns.conftest import netns_cluster

CHECKOUT = os.environ.get("NANOKUBE_CLIENT_PYTHON", "")
MODULES = ["test_client.py", "test_apps.py", "test_watch.py", "test_informer.py", "test_utils.py",
           "test_batch.py"]  # test_batch.py: in newer checkouts only (a Job through the real agent)
NEEDS_OTHER_ISSUES = {
    # loopback mode: the ConfigMap volume is not at /opt (pods get NANOKUBE_MOUNTS) and nginx binds 0.0.0.0:80;
    # both pass in netns mode (test_port_forward_tests_in_netns_mode below)
    "test_client.TestClient.test_portforward_http": "loopback mode: nginx binds *:80, shared by every pod",
    "test_client.TestClient.test_portforward_raw": "loopback mode: the script's volume is not mounted at /opt",
}
PORT_FORWARD = ["test_portforward_raw", "test_portforward_http"]
ALIAS = """import importlib
import sys

import kubernetes

sys.modules["kubernetes.e2e_test"] = importlib.import_module("e2e_test")
kubernetes.e2e_test = sys.modules["kubernetes.e2e_test"]
""" + """
# The client's SharedInformer.stop() misses a watch whose request is still in flight: Watch.stop() can shut down
# only a response it already has (and stream() clears the flag as it starts), so the informer's thread then waits
# for the watch's next event, and stop() joins it: with no more events (test_cache_populated_after_start stops
# right after the list) that is until the server ends the watch, 30-60 min later, on any apiserver. Stop until
# the thread has ended.
try:
    from kubernetes.informer import informer as _informer
except ImportError:  # an older client: no informer, no test of it
    _informer = None
if _informer is not None:
    def _stop(self):
        self._stop_event.set()
        thread = self._thread
        while thread is not None and thread.is_alive():
            watch = self._watch
            if watch is not None:
                watch.stop()
            thread.join(0.1)
        self._thread = None

    _informer.SharedInformer.stop = _stop
"""


def copy_suite(tmp_path: Path) -> None:
    source = Path(CHECKOUT).expanduser() / "kubernetes" / "e2e_test"
    assert source.is_dir(), f"{source} is not the e2e_test directory of a kubernetes-client/python checkout"
    shutil.copytree(source, tmp_path / "e2e_test")
    (tmp_path / "kubernetes").mkdir()
    (tmp_path / "kubernetes" / "e2e_test").symlink_to(tmp_path / "e2e_test")  # their YAML paths are relative
    (tmp_path / "conftest.py").write_text(ALIAS)


def pytest_argv(report: Path, *targets: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:nanokube", "--timeout", "300",
            f"--junitxml={report}", *targets]


def outcomes(report: Path) -> tuple[set[str], set[str]]:
    """(passed, failed) test names, `module.Class.test`, from pytest's junit report."""
    failed, passed = set(), set()
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname', '').rpartition('e2e_test.')[2]}.{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(name)
        elif case.find("skipped") is None:
            passed.add(name)
    return passed, failed


@pytest.mark.timeout(1800)
@pytest.mark.skipif(not CHECKOUT, reason="NANOKUBE_CLIENT_PYTHON (a kubernetes-client/python checkout) is not set")
def test_official_client_e2e_suite(tmp_path: Path) -> None:
    copy_suite(tmp_path)
    srv = start_server("--network", "loopback")
    try:
        report = tmp_path / "report.xml"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"KUBECONFIG": str(srv.kubeconfig)}
        modules = [f"e2e_test/{m}" for m in MODULES if (tmp_path / "e2e_test" / m).exists()]
        subprocess.run(pytest_argv(report, *modules),
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1700)
    finally:
        srv.stop()
    passed, failed = outcomes(report)
    assert passed, "no test ran"
    unexpected = sorted(failed - set(NEEDS_OTHER_ISSUES))
    assert not unexpected, f"failed beyond the known list: {unexpected}"


@pytest.mark.timeout(600)
@pytest.mark.skipif(not CHECKOUT, reason="NANOKUBE_CLIENT_PYTHON (a kubernetes-client/python checkout) is not set")
@pytest.mark.skipif(bool(NETNS_SKIP), reason=NETNS_SKIP or "-")
def test_port_forward_tests_in_netns_mode(tmp_path: Path) -> None:
    """The two port-forward tests need a pod of their own (volumes at their mountPath, a port 80 of their own):
    netns mode, the suite run inside the server's network namespace."""
    copy_suite(tmp_path)
    report = tmp_path / "report.xml"
    with netns_cluster() as cluster:
        cluster.run("env", "-u", "PYTHONPATH", *pytest_argv(report, "--rootdir", str(tmp_path), "-k",
                                                            " or ".join(PORT_FORWARD),
                                                            str(tmp_path / "e2e_test" / "test_client.py")),
                    check=False, timeout=500)
    passed, failed = outcomes(report)
    assert passed == {f"test_client.TestClient.{name}" for name in PORT_FORWARD} and not failed, (passed, failed)
