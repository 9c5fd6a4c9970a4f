"""The web UI under load: server memory with N browser tabs open on a cluster of S Services, and the
event-to-screen latency of an endpoint change (API write -> the change drawn in a tab), p50/p99.

    PYTHONPATH=src python3 bench/ui_bench.py [--services 1000] [--tabs 10] [--changes 40]

A loopback `nanokube server` (nanokube.testing.Cluster); S Services without selectors (ClusterIP) created in
one kubectl call; Debian's chromium (headless, Playwright; apt-get install chromium; pip install playwright).
Memory: VmRSS of the server process before the first tab, and with the tabs open and settled. Latency: a
Service "probe" with a hand-made EndpointSlice whose address is replaced `--changes` times through the API;
each time the first tab is awaited until it shows the new address (polled by the browser every animation frame).
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml

from bench_tools import require
from nanokube.testing import Cluster
from nanokube.ui.auth import login_url

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def services(n: int) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i:04d}"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}} for i in range(n)]})


def probe_slice(ip: str) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "probe-1", "labels": {"kubernetes.io/service-name": "probe"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--tabs", type=int, default=10)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    require("chromium", "kubectl")
    from playwright.sync_api import sync_playwright

    with Cluster() as c:
        assert c._proc is not None
        pid = c._proc.pid
        token = (c.data_dir / "token").read_text().strip()
        t0 = time.monotonic()
        c.kubectl("create", "-f", "-", input=services(args.services), timeout=600)
        c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probe"},
                 "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        c.apply(probe_slice("10.9.0.1"))
        print(f"{args.services} Services created in {time.monotonic() - t0:.1f}s")
        base = rss_mib(pid)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
            context = browser.new_context(ignore_https_errors=True)
            pages = []
            t0 = time.monotonic()
            for _ in range(args.tabs):
                page = context.new_page()
                page.goto(login_url(c.api_url, token))
                page.wait_for_selector('[data-service="probe"] .endpoint', timeout=120_000)
                pages.append(page)
            opened = time.monotonic() - t0
            time.sleep(3)
            with_tabs = rss_mib(pid)
            import kubernetes

            discovery = kubernetes.client.DiscoveryV1Api(c.api_client())
            lat = []
            for i in range(args.changes):
                ip = f"10.9.{1 + i // 250}.{1 + i % 250}"
                start = time.monotonic()
                discovery.patch_namespaced_endpoint_slice("probe-1", "default", {"endpoints": [
                    {"addresses": [ip], "conditions": {"ready": True}}]})
                pages[0].wait_for_function(
                    f"!!document.querySelector('[data-service=\"probe\"] .endpoint[data-address=\"{ip}\"]')",
                    polling="raf", timeout=60_000)
                lat.append(time.monotonic() - start)
            browser.close()
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"server RSS: {base:.0f} MiB before the UI, {with_tabs:.0f} MiB with {args.tabs} tabs open "
              f"(+{with_tabs - base:.0f} MiB); {args.tabs} tabs opened in {opened:.1f}s")
        print(f"event-to-screen over {args.changes} changes (PATCH of the slice sent -> drawn in a tab): "
              f"p50 {statistics.median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
