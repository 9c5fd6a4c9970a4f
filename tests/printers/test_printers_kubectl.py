"""The real kubectl renders our Tables: a small HTTP server on 127.0.0.1 answers discovery and `get`.

Only discovery and the list endpoints exist here; the point is kubectl's own handling of the Table (column
hiding without -o wide, upper-cased headers, tabwriter layout, integer and boolean cells).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from nanokube.api.served_resources import RESOURCES
from nanokube.apiserver.printing import to_table

from .kubectl_text import render
from .objects import NOW, article_services, container_status, meta, pod

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

CORE = [r for r in RESOURCES if r.group == ""]


def objects() -> dict[str, list[dict]]:
    svcs = article_services()
    return {
        "services": [svcs["kubernetes"], svcs["mariadb-service"], svcs["svc-nodeport-mariadb"]],
        "pods": [pod("crash", age={"minutes": 20}, statuses=[container_status(
                     ready=False, restarts=3, state={"waiting": {"reason": "CrashLoopBackOff"}},
                     last_state={"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:55:00Z"}})]),
                 pod("mariadb-deployment-68b7fcd4cd-7sc5l", statuses=[container_status()],
                     conditions=[{"type": "Ready", "status": "True"}])],
        "secrets": [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta("db-pass"),
                     "data": {"user": "", "password": ""}}],
        "events": [{"apiVersion": "v1", "kind": "Event", "metadata": meta("mariadb.17c8a3f2e1d0b9a8"),
                    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "mariadb"},
                    "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container",
                    "source": {"component": "kubelet", "host": "node-1"}, "count": 4,
                    "firstTimestamp": "2024-05-01T11:40:00Z", "lastTimestamp": "2024-05-01T11:58:30Z"}],
        "endpoints": [{"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("mariadb-service"),
                       "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 3306}]}]}],
    }


def discovery(base: str) -> web.Application:
    data = objects()

    async def api(_: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"],
                                  "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": base}]})

    async def apis(_: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def api_v1(_: web.Request) -> web.Response:
        resources = [{"name": r.plural, "singularName": r.singular_name, "namespaced": r.namespaced, "kind": r.kind,
                      "verbs": ["get", "list"], "shortNames": list(r.short_names)} for r in CORE]
        return web.json_response({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                                  "resources": resources})

    async def listing(request: web.Request) -> web.Response:
        plural = request.match_info["plural"]
        if "as=Table" not in request.headers.get("Accept", ""):
            return web.json_response({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "77"},
                                      "items": data.get(plural, [])})
        table = to_table(plural, "", data.get(plural, []), now=NOW,
                         include_object=request.query.get("includeObject", "Metadata"),
                         list_meta={"resourceVersion": "77"})
        return web.json_response(table, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/api/v1", api_v1)
    app.router.add_get("/api/v1/namespaces/{ns}/{plural}", listing)
    return app


@pytest.fixture
async def kubectl(tmp_path: Path) -> AsyncIterator:
    runner = web.AppRunner(discovery("127.0.0.1:0"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters:\n- name: t\n  cluster:\n    server: http://127.0.0.1:{port}\n"
        "users:\n- name: t\n  user: {}\n"
        "contexts:\n- name: t\n  context:\n    cluster: t\n    user: t\n    namespace: default\n")

    async def run(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "kubectl", f"--kubeconfig={kubeconfig}", f"--cache-dir={tmp_path / 'cache'}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode == 0, err.decode()
        return out.decode()

    try:
        yield run
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("plural", "wide"), [("services", False), ("services", True), ("pods", False),
                                              ("pods", True), ("secrets", False), ("endpoints", False),
                                              ("events", False), ("events", True)])
async def test_kubectl_output_matches_our_rendering(kubectl, plural: str, wide: bool) -> None:
    args = ["get", plural] + (["-o", "wide"] if wide else [])
    got = await kubectl(*args)
    assert got == render(to_table(plural, "", objects()[plural], now=NOW), wide=wide)


async def test_kubectl_get_svc_shows_the_article_columns(kubectl) -> None:
    got = await kubectl("get", "svc")
    assert got.splitlines()[0] == "NAME                   TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)          AGE"
    assert "svc-nodeport-mariadb   NodePort    10.97.14.218   <none>        3306:31111/TCP   100s" in got


async def test_kubectl_sort_by_uses_full_objects(kubectl) -> None:
    # --sort-by makes kubectl ask for includeObject=Object and sort rows on the embedded objects.
    got = await kubectl("get", "pods", "--sort-by=.metadata.creationTimestamp")
    assert [line.split()[0] for line in got.splitlines()[1:]] == ["mariadb-deployment-68b7fcd4cd-7sc5l", "crash"]
    assert "crash                                 0/1     CrashLoopBackOff   3 (5m ago)   20m" in got


async def test_kubectl_output_name_reads_plain_objects(kubectl) -> None:
    got = await kubectl("get", "svc", "-o", "name")
    assert got.split() == ["service/kubernetes", "service/mariadb-service", "service/svc-nodeport-mariadb"]
