"""The Service map in a real browser: the article's Services, a Deployment scaled and a pod deleted, live."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.conftest import Server
from tests.loopback.conftest import echo_deployment, http_get, kubectl_json, manifest, service
from tests.polling import eventually
from tests.ui.browser import chromium

from nanokube.ui.auth import login_url

ARTICLE = Path(__file__).resolve().parents[2] / "examples" / "article"
HTTP = [{"name": "http", "port": 80, "targetPort": 8080}]
REQUESTS = 200


def _slice_addresses(srv: Server, name: str) -> set[str]:
    out = set()
    for eps in kubectl_json(srv, "endpointslices", "-l", f"kubernetes.io/service-name={name}")["items"]:
        for ep in eps.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is not False:
                out.update(ep.get("addresses") or [])
    return out


def _page_addresses(page, name: str) -> set[str]:  # type: ignore[no-untyped-def]
    return set(page.eval_on_selector_all(f'[data-service="{name}"] .endpoint.ready',
                                         "els => els.map(e => e.dataset.address)"))


def _within(seconds: float, check) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    eventually(check, timeout=seconds, interval=0.02)
    return time.monotonic() - start


def test_service_map_follows_the_cluster(cluster: Server, tmp_path: Path) -> None:
    for f in sorted(ARTICLE.glob("*svc*.y*ml")):
        cluster.kubectl("apply", "-f", str(f))
    cluster.apply(manifest(echo_deployment("web", 3), service("web", {"app": "web"}, HTTP),
                           service("nomatch", {"app": "nothing-has-this"}, HTTP),
                           service("web-headless", {"app": "web"}, HTTP, clusterIP="None")))
    eventually(lambda: len(_slice_addresses(cluster, "web")) == 3, timeout=90, what="3 ready endpoints")

    with chromium() as browser:
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(login_url(cluster.url, cluster.token))
        page.wait_for_selector('[data-service="web"] .endpoint')

        # the article's Services with their types and addresses
        for name in ("headless-svc", "training-aurora-svc", "svc-nodeport-mariadb", "svc-mariadb-loadbalancer"):
            svc = kubectl_json(cluster, "svc", name)
            card = page.locator(f'[data-service="{name}"]')
            assert card.get_attribute("data-type") == svc["spec"].get("type", "ClusterIP")
            text = card.inner_text()
            if svc["spec"]["type"] == "ExternalName":
                assert svc["spec"]["externalName"] in text
            elif svc["spec"].get("clusterIP") == "None":
                assert "None (headless)" in text
            else:
                assert svc["spec"]["clusterIP"] in text
            for port in svc["spec"].get("ports") or []:
                if port.get("nodePort"):
                    assert f"node {port['nodePort']}" in text
        assert _page_addresses(page, "web") == _slice_addresses(cluster, "web")
        page.screenshot(path=str(tmp_path / "map-3.png"), full_page=True)

        # a selector matching nothing: the explain verdict, with its fix
        report = json.loads(subprocess.run(
            [sys.executable, "-m", "nanokube", "explain", "svc", "nomatch", "--no-checks", "-o", "json",
             "--kubeconfig", str(cluster.kubeconfig)], capture_output=True, text=True, timeout=60).stdout)
        assert not report["verdict"]["ok"]
        problem = page.locator('[data-service="nomatch"] .verdict.problem')
        assert report["verdict"]["fix"] in problem.inner_text()
        assert page.locator('[data-service="web"] .verdict.ok').count() == 1

        # scale to 5: the page follows the EndpointSlices within 2 s, redrawing only the Services it touches
        untouched = '[data-service="training-aurora-svc"]'
        page.evaluate(f"window.__kept = document.querySelector('{untouched}')")
        cluster.kubectl("scale", "deployment/web", "--replicas=5")
        eventually(lambda: len(_slice_addresses(cluster, "web")) == 5, timeout=90, what="5 ready endpoints")
        took = _within(2.0, lambda: _page_addresses(page, "web") == _slice_addresses(cluster, "web"))
        print(f"scale: page caught up {took:.2f}s after kubectl saw 5 endpoints")
        assert page.evaluate(f"window.__kept === document.querySelector('{untouched}')"), "an unrelated Service redrawn"

        # a headless Service: the per-pod DNS names the cluster DNS answers (no hostname set: the dashed IP)
        eventually(lambda: _page_addresses(page, "web-headless") == _slice_addresses(cluster, "web"), timeout=5)
        names = page.eval_on_selector_all('[data-service="web-headless"] .endpoint .dns',
                                          "els => els.map(e => e.textContent)")
        assert sorted(names) == sorted(f"{a.replace('.', '-')}.web-headless.default.svc.cluster.local"
                                       for a in _slice_addresses(cluster, "web"))

        # a bounded request loop: the page's share per endpoint matches what the pods say they served
        ip = kubectl_json(cluster, "svc", "web")["spec"]["clusterIP"]
        pod_ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in kubectl_json(cluster, "pods", "-l", "app=web")
                   ["items"] if not p["metadata"].get("deletionTimestamp")}
        served = Counter(http_get(ip, 80)["pod"] for _ in range(REQUESTS))
        want = {pod_ips[pod]: 100 * n / REQUESTS for pod, n in served.items()}

        def shares_match() -> dict[str, float] | None:
            shown = dict(page.eval_on_selector_all('[data-service="web"] .endpoint',
                                                   "els => els.map(e => [e.dataset.address, e.dataset.share])"))
            if any(v is None for v in shown.values()) or set(shown) != set(want):
                return None
            got = {a: float(v) for a, v in shown.items()}
            return got if all(abs(got[a] - want[a]) <= 15 for a in want) and sum(got.values()) > 90 else None

        eventually(shares_match, timeout=15, what=f"traffic shares {want}")
        page.screenshot(path=str(tmp_path / "map-5.png"), full_page=True)

        # a deleted pod leaves the page
        victim = page.locator('[data-service="web"] .endpoint').first.get_attribute("data-pod")
        victim_ip = page.locator('[data-service="web"] .endpoint').first.get_attribute("data-address")
        cluster.kubectl("delete", "pod", victim, "--wait=false")
        eventually(lambda: victim_ip not in _page_addresses(page, "web"), timeout=10, what="deleted pod gone")
        eventually(lambda: page.locator(f'[data-service="web"] [data-pod="{victim}"]').count() == 0, timeout=30,
                   what="the deleted pod's terminating endpoint gone too")
        page.screenshot(path=str(tmp_path / "map-deleted.png"), full_page=True)

        phone = context.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(cluster.url + "/ui/")
        phone.wait_for_selector('[data-service="web"] .endpoint')
        phone.screenshot(path=str(tmp_path / "map-phone.png"), full_page=True)

        # one click to a pod's YAML
        def yaml_shown() -> bool:  # the map may redraw under the click: click again until the YAML shows
            try:
                if page.locator("#details").is_visible():
                    page.locator("#close").click(timeout=5000)
                endpoint = page.locator('[data-service="web"] .endpoint.ready').first
                name = endpoint.get_attribute("data-pod", timeout=5000)
                endpoint.locator(".pod").click(timeout=5000)
                return bool(page.wait_for_function(
                    "name => { const text = document.getElementById('details-body').textContent;"
                    " return text.includes('kind: Pod') && text.includes('name: ' + name); }", arg=name,
                    timeout=5000))
            except Exception as err:  # playwright's TimeoutError: try again
                if type(err).__name__ != "TimeoutError":
                    raise
                return False

        eventually(yaml_shown, timeout=30, what="a pod's YAML after one click")
        context.close()
    print(f"screenshots in {tmp_path}")


def test_browser_without_login_sees_only_the_prompt(cluster: Server, tmp_path: Path) -> None:
    with chromium() as browser:
        page = browser.new_page(ignore_https_errors=True)
        page.goto(cluster.url + "/ui/")
        page.fill('input[name="token"]', "wrong-token")
        page.click('button[type="submit"]')
        page.wait_for_selector('input[name="token"]')
        assert "kubernetes" not in page.content() and not page.context.cookies()
        page.screenshot(path=str(tmp_path / "login.png"))
