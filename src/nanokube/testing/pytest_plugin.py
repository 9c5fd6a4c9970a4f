"""The pytest plugin (entry point `pytest11: nanokube`): a real cluster per test session, fixture-cheap.

Fixtures: `nanokube_cluster` (a `nanokube.Cluster`, scope from `--nanokube-scope` / ini `nanokube_scope`,
default session; one per pytest-xdist worker) and `nanokube_namespace` (a fresh namespace per test, deleted
after). `@pytest.mark.nanokube_netns` asks for a netns-mode cluster (root). When a test that used the cluster
fails, its report gets a "nanokube" section: recent events, the logs of pods that are not ready and the tail of
the server's log.

Loaded in every pytest run once nanokube is installed, so this module imports nothing heavy: the cluster code
loads when a fixture is first used.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from nanokube.testing.cluster import Cluster

SCOPES = ("session", "package", "module", "class", "function")
MARKER = "nanokube_netns"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nanokube", "nanokube clusters")
    group.addoption("--nanokube-scope", default=None, choices=SCOPES,
                    help="lifetime of the nanokube_cluster fixture (default: ini nanokube_scope, else session)")
    group.addoption("--nanokube-server-arg", action="append", default=None, metavar="FLAG",
                    help="extra `nanokube server` flag for the fixture's clusters (repeatable; "
                    "e.g. --nanokube-server-arg=--dns-upstream=127.0.0.1:9)")
    parser.addini("nanokube_scope", "lifetime of the nanokube_cluster fixture (default session)", default="session")
    parser.addini("nanokube_server_args", "extra `nanokube server` flags for the fixture's clusters",
                  type="args", default=[])
    parser.addini("nanokube_report_lines", "lines of server log / pod log in a failing test's report",
                  default="40")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: run this test against a netns-mode nanokube cluster (root)")


def _scope(fixture_name: str, config: pytest.Config) -> str:
    scope = config.getoption("--nanokube-scope") or config.getini("nanokube_scope") or "session"
    if scope not in SCOPES:
        raise pytest.UsageError(f"nanokube_scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return str(scope)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A netns test gets its own instance of the fixture (pytest caches one per parameter), with its scope
    if "nanokube_cluster" in metafunc.fixturenames and metafunc.definition.get_closest_marker(MARKER):
        metafunc.parametrize("nanokube_cluster", ["netns"], indirect=True, ids=["netns"],
                             scope=_scope("nanokube_cluster", metafunc.config))  # type: ignore[arg-type]


@pytest.fixture(scope=_scope)
def nanokube_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A running nanokube cluster (`nanokube.Cluster`): kubeconfig, api_client(), kubectl(), apply(), url()..."""
    from nanokube.testing.cluster import Cluster

    network = getattr(request, "param", "loopback")
    if network == "netns" and os.geteuid() != 0:
        pytest.skip("nanokube_netns needs root")
    config = request.config
    args = [*config.getini("nanokube_server_args"), *(config.getoption("--nanokube-server-arg") or [])]
    with Cluster(network=network, args=args) as cluster:
        yield cluster


@pytest.fixture
def nanokube_namespace(request: pytest.FixtureRequest, nanokube_cluster: Cluster) -> Iterator[str]:
    """The name of a fresh namespace for this test, deleted (with everything in it) after the test."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-") or "test"
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    nanokube_cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        if nanokube_cluster.running:
            nanokube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and call.when in ("call", "setup"):
        cluster = getattr(item, "funcargs", {}).get("nanokube_cluster")
        if cluster is not None and cluster.running:
            namespace = item.funcargs.get("nanokube_namespace")
            lines = int(item.config.getini("nanokube_report_lines"))
            from nanokube.testing.diagnostics import failure_report

            report.sections.append(("nanokube cluster", failure_report(cluster, namespace, lines)))
    return report
