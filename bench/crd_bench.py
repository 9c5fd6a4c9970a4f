"""Server memory per 1,000 objects of a CustomResourceDefinition, through the real `nanokube server` over HTTPS.

    python bench/crd_bench.py [--objects 5000] [--step 1000] [--components controllers]

One fresh server (loopback, no agent; `--components` as given, default the controllers too, as
`nanokube server` runs them) gets a CRD with a structural schema (defaults, a status subresource, printer
columns); then --objects custom objects are created in steps of --step (concurrency 16), and after each step
the server's RSS is read (after a settle and a forced collection hint: a GET that allocates nothing). In the same
run, on a second fresh server, the same number of ConfigMaps with the same payload size: the built-in
baseline. Also: list of all custom objects as JSON and as a Table (kubectl get), median of 5.
The client runs in this process (aiohttp), so on a 2-core machine it competes with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

from agent_bench import rss_kib
from apiserver_bench import TABLE, spawn

GROUP = "bench.nanokube.dev"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                                         {"name": "Colour", "type": "string", "jsonPath": ".spec.colour"}],
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "size": {"type": "integer", "minimum": 0, "default": 1},
                    "colour": {"type": "string", "enum": ["red", "green", "blue"]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}},
        }],
    },
}


def widget(i: int) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": f"w-{i:06d}"},
            "spec": {"size": i % 100, "colour": "green", "labels": {"team": "bench", "index": str(i)}}}


def config_map(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"w-{i:06d}"},
            "data": {"size": str(i % 100), "colour": "green", "team": "bench", "index": str(i)}}


async def create_all(session: aiohttp.ClientSession, url: str, bodies: list[dict[str, Any]], concurrency: int) -> None:
    queue = list(reversed(bodies))

    async def worker() -> None:
        while queue:
            body = queue.pop()
            async with session.post(url, json=body) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"{resp.status}: {await resp.text()}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def settle(session: aiohttp.ClientSession, base: str) -> None:
    await asyncio.sleep(2.0)
    async with session.get(base + "/readyz") as resp:
        await resp.read()


async def measure(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    proc, _, _ = spawn(tmp / kind, dict(os.environ), components=args.components)
    out: dict[str, Any] = {"rss_kib": []}
    try:
        headers = {"Authorization": f"Bearer {proc.token}"}
        connector = aiohttp.TCPConnector(ssl=proc.ssl_context(), limit=32)
        async with aiohttp.ClientSession(proc.url, headers=headers, connector=connector) as session:
            if kind == "crd":
                async with session.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD) as r:
                    assert r.status == 201, await r.text()
                url, make = f"/apis/{GROUP}/v1/namespaces/default/widgets", widget
            else:
                url, make = "/api/v1/namespaces/default/configmaps", config_map
            await settle(session, proc.url)
            out["rss_kib"].append(rss_kib(proc.proc.pid))
            began = time.perf_counter()
            for start in range(0, args.objects, args.step):
                await create_all(session, url, [make(i) for i in range(start, start + args.step)], 16)
                await settle(session, proc.url)
                out["rss_kib"].append(rss_kib(proc.proc.pid))
            out["create_s"] = time.perf_counter() - began - 2.0 * (args.objects // args.step)
            for accept, name in (("application/json", "list_json_ms"), (TABLE, "list_table_ms")):
                times = []
                for _ in range(5):
                    t = time.perf_counter()
                    async with session.get(url, headers={"Accept": accept}) as resp:
                        await resp.read()
                    times.append((time.perf_counter() - t) * 1000)
                out[name] = statistics.median(times)
    finally:
        proc.stop()
    return out


def report(name: str, result: dict[str, Any], step: int) -> None:
    rss = result["rss_kib"]
    per_step = [(b - a) / 1024 for a, b in itertools.pairwise(rss)]
    total = (rss[-1] - rss[0]) / 1024
    steps = len(rss) - 1
    print(f"{name}: RSS {rss[0] / 1024:.1f} MiB empty -> {rss[-1] / 1024:.1f} MiB; "
          f"+{total / steps:.2f} MiB per {step} objects (steps: {', '.join(f'{s:+.2f}' for s in per_step)}); "
          f"created in {result['create_s']:.1f} s; list JSON {result['list_json_ms']:.0f} ms, "
          f"Table {result['list_table_ms']:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--components", default="controllers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nanokube-crd-bench-") as tmp:
        crd = asyncio.run(measure("crd", args, Path(tmp)))
        builtin = asyncio.run(measure("configmaps", args, Path(tmp)))
    report(f"custom objects ({GROUP} Widgets)", crd, args.step)
    report("ConfigMaps, same payload (baseline, same run)", builtin, args.step)
    crd_growth = (crd["rss_kib"][-1] - crd["rss_kib"][0])
    cm_growth = (builtin["rss_kib"][-1] - builtin["rss_kib"][0])
    if cm_growth > 0:
        print(f"ratio custom / ConfigMap RSS growth: {crd_growth / cm_growth:.2f}")


if __name__ == "__main__":
    main()
