"""Resource usage of the node and its containers, from the cgroups (containers) and /proc (node), sampled every
few seconds so a CPU rate is always at hand, as the kubelet's resource metrics endpoint provides them:

GET /metrics/resource   Prometheus text (container_/pod_/node_ cpu_usage_seconds_total, memory_working_set_bytes)
GET /metrics/usage      the same as JSON with CPU rates, for the API server's metrics.k8s.io
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from nanokube.agent.cgroups_pod import pod_dir
from nanokube.agent.nodecontext import NodeRuntime

INTERVAL = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    at: float  # time.time()
    cpu_ns: int
    memory: int


def _rate(samples: deque[Sample]) -> tuple[int, float]:
    """(nanocores, window seconds) between the oldest and newest sample kept."""
    if len(samples) < 2:
        return 0, 0.0
    first, last = samples[0], samples[-1]
    window = last.at - first.at
    if window <= 0:
        return 0, 0.0
    return max(0, int((last.cpu_ns - first.cpu_ns) / window)), window


def _node_sample() -> Sample:
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy_ns = (sum(fields[:8]) - idle) * 1_000_000_000 // CLOCK_TICKS
    info = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024
    return Sample(time.time(), busy_ns, info.get("MemTotal", 0) - info.get("MemAvailable", 0))


class Usage:
    def __init__(self, rt: NodeRuntime) -> None:
        self.rt = rt
        self.containers: dict[tuple[str, str, str], deque[Sample]] = {}
        self.pods: dict[tuple[str, str], deque[Sample]] = {}
        self.node: deque[Sample] = deque(maxlen=2)

    def sample(self) -> None:
        now = time.time()
        self.node.append(_node_sample())
        seen_c, seen_p = set(), set()
        driver = self.rt.cgroups
        for (ns, name), worker in list(self.rt.workers.items()):
            running = [c for c in worker.containers.values() if c.running and c.proc.cgroup is not None]
            for c in running:
                cpu, mem = c.proc.cgroup.cpu_usage_ns(), c.proc.cgroup.working_set()
                if cpu is None:
                    continue
                key = (ns, name, c.name)
                seen_c.add(key)
                self.containers.setdefault(key, deque(maxlen=2)).append(Sample(now, cpu, mem or 0))
            if running and driver is not None and driver.enabled:
                group = driver.cgroup(pod_dir(worker.uid))
                cpu, mem = group.cpu_usage_ns(), group.working_set()
                if cpu is not None:
                    seen_p.add((ns, name))
                    self.pods.setdefault((ns, name), deque(maxlen=2)).append(Sample(now, cpu, mem or 0))
        for key in set(self.containers) - seen_c:
            del self.containers[key]
        for pkey in set(self.pods) - seen_p:
            del self.pods[pkey]

    async def run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.sample()
            await asyncio.sleep(INTERVAL)

    # -- views -----------------------------------------------------------------------------------------
    def as_json(self) -> dict[str, Any]:
        node_rate, node_window = _rate(self.node)
        pods: dict[tuple[str, str], dict[str, Any]] = {}
        for (ns, name, container), samples in self.containers.items():
            rate, window = _rate(samples)
            if not window:
                continue
            pod = pods.setdefault((ns, name), {"namespace": ns, "name": name, "timestamp": samples[-1].at,
                                               "window": window, "containers": []})
            pod["containers"].append({"name": container, "cpu_nanocores": rate, "memory_bytes": samples[-1].memory})
        last = self.node[-1] if self.node else Sample(time.time(), 0, 0)
        return {"node": {"name": self.rt.settings.node_name, "timestamp": last.at, "window": node_window,
                         "cpu_nanocores": node_rate, "memory_bytes": last.memory},
                "pods": list(pods.values())}

    def prometheus(self) -> str:
        lines = []

        def family(name: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {'counter' if name.endswith('_total') else 'gauge'}")

        family("container_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the container in core-seconds")
        for (ns, pod, c), s in sorted(self.containers.items()):
            lines.append(f'container_cpu_usage_seconds_total{{container="{c}",namespace="{ns}",pod="{pod}"}} '
                         f"{s[-1].cpu_ns / 1e9:.9f} {int(s[-1].at * 1000)}")
        family("container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes")
        for (ns, pod, c), s in sorted(self.containers.items()):
            lines.append(f'container_memory_working_set_bytes{{container="{c}",namespace="{ns}",pod="{pod}"}} '
                         f"{s[-1].memory} {int(s[-1].at * 1000)}")
        family("node_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the node in core-seconds")
        if self.node:
            lines.append(f"node_cpu_usage_seconds_total {self.node[-1].cpu_ns / 1e9:.9f} {int(self.node[-1].at * 1000)}")
        family("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes")
        if self.node:
            lines.append(f"node_memory_working_set_bytes {self.node[-1].memory} {int(self.node[-1].at * 1000)}")
        family("pod_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds")
        for (ns, pod), s in sorted(self.pods.items()):
            lines.append(f'pod_cpu_usage_seconds_total{{namespace="{ns}",pod="{pod}"}} {s[-1].cpu_ns / 1e9:.9f} '
                         f"{int(s[-1].at * 1000)}")
        family("pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes")
        for (ns, pod), s in sorted(self.pods.items()):
            lines.append(f'pod_memory_working_set_bytes{{namespace="{ns}",pod="{pod}"}} {s[-1].memory} '
                         f"{int(s[-1].at * 1000)}")
        family("scrape_error", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise")
        lines.append("scrape_error 0")
        return "\n".join(lines) + "\n"


def add_routes(app: web.Application, usage: Usage) -> None:
    async def resource(_request: web.Request) -> web.Response:
        return web.Response(body=usage.prometheus().encode(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def as_json(_request: web.Request) -> web.Response:
        return web.json_response(usage.as_json())

    app.router.add_get("/metrics/resource", resource)
    app.router.add_get("/metrics/usage", as_json)
