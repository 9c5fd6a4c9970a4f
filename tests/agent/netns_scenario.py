"""Run by test_netns.py inside `unshare --net --mount` (a fresh network namespace, private /run): three echo
pods in netns mode plus a pod with volumes; prints one JSON line with what it saw."""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from nanokube.agent import netns
from nanokube.agent.nodecontext import NodeRuntime
from nanokube.agent.settings import AgentSettings
from nanokube.agent.worker import PodWorker
from nanokube.images.catalogue import Catalogue


def pod(name, containers, **spec):
    return {"metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4())},
            "spec": {"containers": containers, **spec}}


def fetch(url):
    return json.loads(urllib.request.urlopen(url, timeout=2).read())


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True).stdout


def netns_left() -> list[str]:
    return sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []


def cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def is_dir(path: str) -> bool:
    return os.path.isdir(path)


async def until(predicate, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not (result := predicate()):
            await asyncio.sleep(0.01)
        return result


async def main(data_dir: Path) -> dict:
    out: dict = {}
    settings = AgentSettings(node_name="n", node_ip="10.244.0.1", network="netns", data_dir=data_dir,
                             pod_cidr="10.244.0.0/24", cluster_dns="10.96.0.10")
    configmaps = {("default", "cfg"): {"data": {"greeting": "hello"}}}

    async def get_cm(ns, name):
        return configmaps.get((ns, name))

    rt = NodeRuntime(settings=settings, pod_cidr="10.244.0.0/24", catalogue=Catalogue(), get_configmap=get_cm)
    out["bridge_created"] = await netns.ensure_bridge("10.244.0.0/24")
    echo = [PodWorker(rt, pod(f"echo-{i}", [{"name": "echo", "image": "nanokube/echo"}])) for i in range(3)]
    began = time.monotonic()
    for w in echo:
        w.start()
    answers = []
    for w in echo:
        await until(lambda w=w: w.sandbox is not None)
        ip = w.sandbox.ip
        answer = None
        async with asyncio.timeout(10):
            while answer is None:
                try:
                    answer = await asyncio.to_thread(fetch, f"http://{ip}:8080/")
                except OSError:
                    await asyncio.sleep(0.01)
        answers.append(answer)
    out["all_listening_after"] = time.monotonic() - began
    out["answers"] = answers
    out["ips"] = [w.sandbox.ip for w in echo]
    out["listen"] = sh("ip", "netns", "exec", echo[0].sandbox.record.netns, "ss", "-ltnH")
    shell = "cat /etc/resolv.conf; echo host=$(hostname); cat /cfg/greeting; echo; touch /cfg/x 2>/dev/null || echo ro; " \
            "ls /nk-agenttest-mount; setsid sleep 300 & echo done; sleep 30"
    vol = PodWorker(rt, pod("vols", [{"name": "sh", "image": "busybox", "command": ["sh", "-c", shell],
                                      "volumeMounts": [{"name": "cfg", "mountPath": "/cfg", "readOnly": True},
                                                       {"name": "scratch", "mountPath": "/nk-agenttest-mount"}]}],
                            hostname="custom", subdomain="sub",
                            volumes=[{"name": "cfg", "configMap": {"name": "cfg"}},
                                     {"name": "scratch", "emptyDir": {}}]))
    vol.start()
    logfile = await until(lambda: vol.containers["sh"].log.current if vol.containers["sh"].running else None)
    await until(lambda: "done" in logfile.read_text())
    out["vol_log"] = [line.split(" ", 3)[3] for line in logfile.read_text().splitlines()]
    out["mount_point_on_host_while_running"] = is_dir("/nk-agenttest-mount")
    # every process in the pods' network namespaces, including one that escaped its group with setsid
    pod_pids = {int(pid) for w in [*echo, vol] for pid in sh("ip", "netns", "pids", w.sandbox.record.netns).split()}
    out["escaped_seen"] = sum(cmdline(pid) == "sleep 300" for pid in pod_pids)
    for w in [*echo, vol]:
        meta = dict(w.pod["metadata"], deletionTimestamp="now", deletionGracePeriodSeconds=2)
        w.update(dict(w.pod, metadata=meta))
    for w in [*echo, vol]:
        await asyncio.wait_for(w.finished.wait(), 10)
    out["left_netns"] = netns_left()
    for _ in range(100):  # a namespace goes once its last process is reaped: allow the kernel a moment
        if sh("ip", "-o", "link").count("nkv") == 0:
            break
        await asyncio.sleep(0.05)
    out["left_links"] = sh("ip", "-o", "link").count("nkv")
    out["left_processes"] = sorted(pid for pid in pod_pids if alive(pid))
    out["mount_point_on_host_after"] = is_dir("/nk-agenttest-mount")
    await netns.remove_bridge()
    out["bridge_left"] = netns.link_exists(netns.BRIDGE)
    return out


if __name__ == "__main__":
    subprocess.run(["mount", "-t", "tmpfs", "nk-agenttest", "/run"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps(asyncio.run(main(Path(sys.argv[1])))))
