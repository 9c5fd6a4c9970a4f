"""The pytest plugin, run as a user runs it (pytester, a pytest of its own in a subprocess): fixtures, the
report of a failing test, scopes, pytest-xdist, the netns marker, and no cost for tests that use no cluster."""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.testing.conftest import PLUGIN, SERVER_ARGS, plugin_args, server_processes

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A short $TMPDIR of this test's own for the inner pytest: its clusters' data dirs land there, so the
    test can tell its servers from those of other runs on the machine."""
    path = tempfile.mkdtemp(prefix="nk-plugin-")
    monkeypatch.setenv("TMPDIR", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    server_args = [f"--nanokube-server-arg={arg}" for arg in SERVER_ARGS]
    return pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", *server_args, *args,
                                         timeout=600)


def test_entry_point_is_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"nanokube": PLUGIN}
    assert any(dep.startswith("pytest-xdist") for dep in project["optional-dependencies"]["test"])


def test_fixtures_give_a_cluster_and_a_fresh_namespace_per_test(pytester: pytest.Pytester, own_tmpdir: str) -> None:
    pytester.makepyfile(test_user="""
        import json

        from kubernetes import client

        seen = []

        def test_first(nanokube_cluster, nanokube_namespace):
            nanokube_cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                                    "data": {"greeting": "hello"}}, namespace=nanokube_namespace)
            api = client.CoreV1Api(nanokube_cluster.api_client())
            assert api.read_namespaced_config_map("settings", nanokube_namespace).data == {"greeting": "hello"}
            seen.append((nanokube_cluster.api_url, nanokube_namespace))

        def test_second(nanokube_cluster, nanokube_namespace):
            url, first_namespace = seen[0]
            assert nanokube_cluster.api_url == url          # session scope: the same cluster
            assert nanokube_namespace != first_namespace    # a namespace of its own
            assert nanokube_namespace.startswith("test-second-")
            # deleted after the first test: still terminating, or already gone
            out = nanokube_cluster.kubectl("get", "namespace", first_namespace, "--ignore-not-found",
                                           "-o", "json").stdout
            if out.strip():
                ns = json.loads(out)
                assert ns["metadata"].get("deletionTimestamp") or ns["status"]["phase"] == "Terminating"

        def test_without_cluster():
            pass
    """)
    result = run(pytester, "-v")
    result.assert_outcomes(passed=3)
    assert not server_processes(own_tmpdir), "the session's cluster was stopped"


def test_a_failing_test_reports_events_pod_logs_and_the_server_log(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_failing="""
        import time

        def test_crashing_app(nanokube_cluster, nanokube_namespace):
            nanokube_cluster.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "crasher"},
                                    "spec": {"selector": {"matchLabels": {"app": "crasher"}},
                                             "template": {"metadata": {"labels": {"app": "crasher"}}, "spec": {
                                                 "containers": [{"name": "main", "image": "busybox", "command":
                                                     ["sh", "-c", "echo boom-from-the-pod; exit 3"]}]}}}},
                                   namespace=nanokube_namespace)
            deadline = time.monotonic() + 60
            while True:
                pods = nanokube_cluster.get("pods", namespace=nanokube_namespace)["items"]
                if pods and "boom" in nanokube_cluster.logs(pods[0]["metadata"]["name"], nanokube_namespace):
                    break
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert False, "the app never became ready"
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([
        r".*nanokube cluster.*",
        r"--- events \(test-crashing-app-\w+, newest last\) ---",
        r".*SuccessfulCreate\s+replicaset/crasher-.*Created pod: crasher-.*",
        r"--- pod test-crashing-app-\w+/crasher-[\w-]+ not ready: phase \w+, Ready False.*",
        r"\[pod/crasher-[\w-]+/main\] boom-from-the-pod",
        r"--- server log .*, last 40 lines ---",
    ], consecutive=False)


def test_function_scope_gives_each_test_its_own_cluster(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nnanokube_scope = function\n")
    pytester.makepyfile(test_scoped="""
        dirs = []

        def test_one(nanokube_cluster):
            dirs.append(nanokube_cluster.data_dir)

        def test_two(nanokube_cluster):
            assert nanokube_cluster.running and nanokube_cluster.data_dir != dirs[0]
            assert not dirs[0].exists()  # the first test's cluster is gone, data dir and all
    """)
    run(pytester).assert_outcomes(passed=2)


def test_xdist_runs_one_cluster_per_worker_side_by_side(pytester: pytest.Pytester, tmp_path: Path,
                                                        own_tmpdir: str) -> None:
    """Two workers, each with its cluster, each creating the same Deployment and NodePort Service at once."""
    pytester.makepyfile(test_parallel=f"""
        import json, os, time, urllib.request

        def test_service(nanokube_cluster, nanokube_namespace, index):
            nanokube_cluster.apply([
                {{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "echo"}},
                 "spec": {{"selector": {{"matchLabels": {{"app": "echo"}}}},
                          "template": {{"metadata": {{"labels": {{"app": "echo"}}}},
                                       "spec": {{"containers": [{{"name": "echo", "image": "nanokube/echo"}}]}}}}}}}},
                {{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "echo"}},
                 "spec": {{"type": "NodePort", "selector": {{"app": "echo"}},
                          "ports": [{{"port": 80, "targetPort": 8080, "nodePort": 30000 + index}}]}}}}],
                namespace=nanokube_namespace)
            nanokube_cluster.wait("deployment", "echo", "Available", namespace=nanokube_namespace)
            url = nanokube_cluster.url("echo", 80, namespace=nanokube_namespace)
            deadline = time.monotonic() + 60
            while True:
                try:
                    reply = json.loads(urllib.request.urlopen(url, timeout=3).read())
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert reply["namespace"] == nanokube_namespace
            worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
            with open({str(tmp_path)!r} + f"/{{worker}}-{{index}}", "w") as out:
                out.write(nanokube_cluster.api_url)

        import pytest

        @pytest.fixture(params=[0, 1, 2, 3])
        def index(request):
            return request.param
    """)
    run(pytester, "-p", "xdist", "-n", "2").assert_outcomes(passed=4)
    by_worker: dict[str, set[str]] = {}
    for path in tmp_path.iterdir():
        by_worker.setdefault(path.name.split("-")[0], set()).add(path.read_text())
    assert sorted(by_worker) == ["gw0", "gw1"], by_worker
    assert all(len(urls) == 1 for urls in by_worker.values())  # one cluster per worker...
    assert by_worker["gw0"] != by_worker["gw1"]                # ...each its own
    assert not server_processes(own_tmpdir)


@pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")
def test_netns_marker_gives_a_netns_cluster(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked="""
        import pytest

        @pytest.mark.nanokube_netns
        def test_in_netns(nanokube_cluster):
            assert nanokube_cluster.network == "netns"
            assert nanokube_cluster.resolve("kubernetes.default") == ["10.96.0.1"]

        def test_in_loopback(nanokube_cluster):
            assert nanokube_cluster.network == "loopback"
    """)
    run(pytester, "-v").assert_outcomes(passed=2)


def test_unused_plugin_costs_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="""
        import sys

        def test_plain():
            assert "nanokube.testing.cluster" not in sys.modules
    """)
    run(pytester).assert_outcomes(passed=1)
