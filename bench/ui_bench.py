"""The web UI under load: server memory with N browser tabs open on a cluster of S Services, and the
event-to-screen latency of an endpoint change (API write -> the change in every tab's page), p50/p99.

    PYTHONPATH=src python3 bench/ui_bench.py [--services 1000] [--tabs 10] [--changes 40] [--before main]

A loopback `nanokube server` (nanokube.testing.Cluster); S Services without selectors (ClusterIP) created in
one kubectl call; Debian's chromium (headless, Playwright; apt-get install chromium; pip install playwright).
Two ways to hold the tabs open, one after the other on the same server:
- `shared`: the tabs of one browser profile, which share one stream through the page's SharedWorker;
- `separate`: each tab in its own browser context (as tabs of different users/browsers): one stream each.
Memory: VmRSS of the server process before the first tab, and with the tabs open and settled. Latency: a
Service "probe" with a hand-made EndpointSlice whose address is replaced `--changes` times through the API;
every tab records (a MutationObserver, Date.now()) when its page shows the new address; the latency of a
change is the time to its slowest tab. Server CPU: the server process's user+system time over the changes.
`--before REF` runs the same on the server and pages of git REF's src/ (git archive), side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

from bench_tools import require
from nanokube.testing import Cluster
from nanokube.ui.auth import login_url

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]
WATCH = """ip => {
  window.__seen = null;
  const sel = '[data-service="probe"] .endpoint[data-address="' + ip + '"]';
  const check = () => { if (window.__seen === null && document.querySelector(sel)) window.__seen = Date.now(); };
  if (window.__observer) window.__observer.disconnect();
  window.__observer = new MutationObserver(check);
  window.__observer.observe(document.getElementById("map"), {childList: true, subtree: true});
  check();
}"""


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def services(n: int) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i:04d}"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}} for i in range(n)]})


def probe_slice(ip: str) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "probe-1", "labels": {"kubernetes.io/service-name": "probe"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def open_tabs(browser, how: str, tabs: int, url_for) -> tuple[list, list]:  # type: ignore[no-untyped-def]
    contexts, pages = [], []
    for i in range(tabs):
        if how == "separate" or i == 0:
            contexts.append(browser.new_context(ignore_https_errors=True))
            contexts[-1].new_page().goto(url_for())  # sign this context in
            page = contexts[-1].pages[0]
        else:
            page = contexts[-1].new_page()
            page.goto(url_for().split("/ui/")[0] + "/ui/")
        page.wait_for_selector('[data-service="probe"] .endpoint', timeout=300_000)
        pages.append(page)
    return contexts, pages


def measure(c: Cluster, how: str, args: argparse.Namespace, first_ip: int) -> dict:
    import kubernetes
    from playwright.sync_api import sync_playwright

    pid = c._proc.pid  # type: ignore[union-attr]
    token = (c.data_dir / "token").read_text().strip()
    discovery = kubernetes.client.DiscoveryV1Api(c.api_client())
    out: dict = {"rss_before": rss_mib(pid)}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        t0 = time.monotonic()
        _contexts, pages = open_tabs(browser, how, args.tabs, lambda: login_url(c.api_url, token))
        out["open_s"] = time.monotonic() - t0
        time.sleep(3)
        out["rss_tabs"] = rss_mib(pid)
        lat, first = [], []
        cpu0 = cpu_seconds(pid)
        for i in range(args.changes):
            n = first_ip + i
            ip = f"10.9.{1 + n // 250}.{1 + n % 250}"
            for page in pages:
                page.evaluate(WATCH, ip)
            start = time.time()
            discovery.patch_namespaced_endpoint_slice("probe-1", "default", {"endpoints": [
                {"addresses": [ip], "conditions": {"ready": True}}]})
            seen = []
            for page in pages:
                page.wait_for_function("window.__seen !== null", timeout=300_000)
                seen.append(page.evaluate("window.__seen") / 1000 - start)
            lat.append(max(seen))
            first.append(min(seen))
        out["cpu_per_change_ms"] = (cpu_seconds(pid) - cpu0) / args.changes * 1000
        out["lat"], out["first"] = lat, first
        browser.close()
    return out


def run_version(label: str, src: Path, args: argparse.Namespace) -> dict[str, dict]:
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)  # the server (a subprocess) runs this tree's code and serves its pages
    try:
        with Cluster() as c:
            t0 = time.monotonic()
            c.kubectl("create", "-f", "-", input=services(args.services), timeout=600)
            c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probe"},
                     "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
            c.apply(probe_slice("10.9.0.1"))
            print(f"[{label}] {args.services} Services created in {time.monotonic() - t0:.1f}s", flush=True)
            results = {}
            for n, how in enumerate(args.ways.split(",")):
                results[how] = r = measure(c, how, args, n * args.changes)
                print(f"[{label}/{how}] RSS {r['rss_before']:.0f} -> {r['rss_tabs']:.0f} MiB with {args.tabs} tabs "
                      f"(opened in {r['open_s']:.1f}s); event-to-screen (slowest tab) p50 "
                      f"{statistics.median(r['lat']) * 1000:.0f} ms p99 {pct(r['lat'], 0.99) * 1000:.0f} ms; "
                      f"first tab p50 {statistics.median(r['first']) * 1000:.0f} ms; server CPU "
                      f"{r['cpu_per_change_ms']:.0f} ms/change", flush=True)
            return results
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--tabs", type=int, default=10)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--ways", default="shared,separate", help="shared and/or separate (see above)")
    parser.add_argument("--before", metavar="REF", help="also run git REF's code, side by side")
    args = parser.parse_args()
    require("chromium", "kubectl")
    versions = {"after": REPO / "src"}
    with tempfile.TemporaryDirectory(prefix="ui-bench-") as tmp:
        if args.before:
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "src"], check=True,
                                     capture_output=True).stdout
            archive_path = Path(tmp) / "before.tar"
            archive_path.write_bytes(archive)
            with tarfile.open(archive_path) as tar:
                tar.extractall(tmp, filter="data")
            versions = {"before": Path(tmp) / "src", **versions}
        results = {label: run_version(label, src, args) for label, src in versions.items()}
    print(f"\n{args.services} Services, {args.tabs} tabs, {args.changes} endpoint changes; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| code | tabs | server RSS before -> with tabs | tabs opened in | event-to-screen p50 | p99 | max "
          "| first tab p50 | server CPU per change |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, ways in results.items():
        for how, r in ways.items():
            print(f"| {label} | {how} | {r['rss_before']:.0f} -> {r['rss_tabs']:.0f} MiB "
                  f"(+{r['rss_tabs'] - r['rss_before']:.0f}) | {r['open_s']:.1f} s "
                  f"| {statistics.median(r['lat']) * 1000:.0f} ms | {pct(r['lat'], 0.99) * 1000:.0f} ms "
                  f"| {max(r['lat']) * 1000:.0f} ms | {statistics.median(r['first']) * 1000:.0f} ms "
                  f"| {r['cpu_per_change_ms']:.0f} ms |")


if __name__ == "__main__":
    main()
