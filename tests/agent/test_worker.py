"""Pods run by a PodWorker in loopback mode: real processes, real sockets, no API server."""

import asyncio
import json
import sys
import urllib.request

from tests.agent.conftest import container_status, make_pod


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def fetch(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url, timeout=2).read())


async def get_json(url: str, timeout: float = 5.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await asyncio.to_thread(fetch, url)
            except OSError:
                await asyncio.sleep(0.02)


async def test_echo_pods_answer_on_their_own_ip(node):
    workers = [node.run(make_pod(f"echo-{i}", [{"name": "echo", "image": "nanokube/echo",
                                                 "args": ["--udp-port", "18081"]}])) for i in range(2)]
    for i, w in enumerate(workers):
        await node.wait_for(lambda w=w: (node.last(w.name) or {}).get("phase") == "Running")
        ip = w.sandbox.ip
        answer = await get_json(f"http://{ip}:8080/")
        assert answer["pod"] == f"echo-{i}" and answer["podIP"] == ip
        assert answer["clientIP"] == "127.0.0.1" and answer["clientPort"] > 0
    status = node.last("echo-0")
    assert status["podIP"] == workers[0].sandbox.ip
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    cs = container_status(status, "echo")
    assert cs["ready"] and cs["started"] and "running" in cs["state"]
    await node.delete(workers[0])
    assert node.removed == ["echo-0"]
    final = node.last("echo-0")
    assert "terminated" in container_status(final, "echo")["state"]


async def test_crashing_container_backs_off_and_counts_restarts(node):
    w = node.run(make_pod("crash", [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo boom; exit 3"]}]))

    def in_backoff():
        cs = container_status(node.last("crash"), "c")
        return cs if cs and cs["restartCount"] >= 2 and "waiting" in cs["state"] else None

    cs = await node.wait_for(in_backoff)
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "restarting failed container=c pod=crash_default(" in cs["state"]["waiting"]["message"]
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    # lastState is the latest run, not an older one
    assert cs["lastState"]["terminated"]["containerID"] == w.containers["c"].container_id
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert node.last("crash")["phase"] == "Running"
    assert (w.containers["c"].log.path(0)).read_text().endswith("stdout F boom\n")


async def test_never_restart_policy_and_init_containers(node, tmp_path):
    out = tmp_path / "order"
    pod = make_pod("job", [{"name": "main", "image": "busybox", "command": ["sh", "-c", f"echo main >> {out}"]}],
                   restartPolicy="Never",
                   initContainers=[{"name": "i1", "image": "busybox", "command": ["sh", "-c", f"echo i1 >> {out}"]},
                                   {"name": "i2", "image": "busybox", "command": ["sh", "-c", f"echo i2 >> {out}"]}])
    node.run(pod)
    status = await node.wait_for(lambda: (node.last("job") or {}).get("phase") == "Succeeded" and node.last("job"))
    assert out.read_text().split() == ["i1", "i2", "main"]
    assert [s["state"]["terminated"]["reason"] for s in status["initContainerStatuses"]] == ["Completed"] * 2
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "PodCompleted"
    failing = make_pod("fail", [{"name": "m", "image": "busybox", "command": ["true"]}], restartPolicy="Never",
                       initContainers=[{"name": "bad", "image": "busybox", "command": ["false"]}])
    node.run(failing)
    status = await node.wait_for(lambda: (node.last("fail") or {}).get("phase") == "Failed" and node.last("fail"))
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"


async def test_env_service_vars_and_config_errors(node, tmp_path):
    node.services.append({"metadata": {"name": "redis", "namespace": "default"},
                          "spec": {"clusterIP": "127.96.0.7", "ports": [{"port": 6379}]}})
    out = tmp_path / "env"
    pod = make_pod("envy", [{"name": "c", "image": "busybox", "command": ["sh", "-c", f"env > {out}; sleep 30"],
                             "env": [{"name": "GREETING", "value": "hi $(REDIS_SERVICE_HOST)"},
                                     {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]}])
    w = node.run(pod)
    cs = await node.wait_for(lambda: (container_status(node.last("envy"), "c") or {}).get("state", {}).get("waiting"))
    assert cs == {"reason": "CreateContainerConfigError", "message": 'secret "db" not found'}
    node.secrets[("default", "db")] = {"data": {"pw": "aHVudGVyMg=="}}
    w.wake()
    await node.poll(lambda: out.exists() and "PW=" in out.read_text())
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["GREETING"] == "hi 127.96.0.7"
    assert env["REDIS_PORT_6379_TCP"] == "tcp://127.96.0.7:6379"
    assert env["PW"] == "hunter2"
    assert env["POD_IP"] == w.sandbox.ip


async def test_graceful_delete_sigterm_then_sigkill(node, tmp_path):
    marker = tmp_path / "prestop"
    term = tmp_path / "term"
    trap = ("import signal, sys, time\n"
            f"signal.signal(signal.SIGTERM, lambda *a: (open({str(term)!r}, 'w').write('got TERM'), sys.exit(0)))\n"
            "print('up', flush=True)\ntime.sleep(60)\n")
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)"
    pod = make_pod("graceful", [
        {"name": "polite", "image": "python", "command": [sys.executable, "-c", trap],
         "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", f"echo stop > {marker}"]}}}},
        {"name": "stubborn", "image": "python", "command": [sys.executable, "-c", stubborn]},
    ], terminationGracePeriodSeconds=2)
    w = node.run(pod)
    await node.wait_for(lambda: (node.last("graceful") or {}).get("phase") == "Running"
                        and all(c.running for c in w.containers.values()))
    for name in ("polite", "stubborn"):  # both have set their SIGTERM handling
        await node.poll(lambda name=name: "up" in w.containers[name].log.current.read_text())
    pids = [c.proc.pid for c in w.containers.values()]
    loop = asyncio.get_running_loop()
    began = loop.time()
    await node.delete(w)
    took = loop.time() - began
    assert 1.8 < took < 5
    assert marker.read_text() == "stop\n"
    assert term.read_text() == "got TERM"
    assert not w.dir.exists()  # logs and emptyDirs go with the pod
    final = node.last("graceful")
    codes = {c["name"]: c["state"]["terminated"]["exitCode"] for c in final["containerStatuses"]}
    assert codes == {"polite": 0, "stubborn": 137}
    assert not any(alive(pid) for pid in pids)


async def test_liveness_failure_restarts_and_readiness_flips(node, tmp_path):
    flag = tmp_path / "ready"
    probe_period = {"periodSeconds": 0.05, "failureThreshold": 1}
    pod = make_pod("probed", [{
        "name": "web", "image": "nanokube/echo", "args": ["--udp-port", "18082"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"exec": {"command": ["test", "-e", str(flag)]}, **probe_period},
        # generous timeout: on a loaded machine a slow answer must not count as the failure this test causes
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 0.05,
                          "timeoutSeconds": 1, "failureThreshold": 3},
    }], terminationGracePeriodSeconds=2)
    w = node.run(pod)
    ready = lambda want: (container_status(node.last("probed"), "web") or {}).get("ready") is want  # noqa: E731
    await node.wait_for(lambda: (node.last("probed") or {}).get("phase") == "Running")
    assert ready(False)
    flag.touch()
    await node.wait_for(lambda: ready(True))
    flag.unlink()
    await node.wait_for(lambda: ready(False))
    w.containers["web"].proc.signal(19)  # SIGSTOP: the liveness HTTP check times out, SIGTERM stays pending
    cs = await node.wait_for(lambda: (container_status(node.last("probed"), "web") or {}).get("restartCount", 0) >= 1
                             and container_status(node.last("probed"), "web"))
    assert cs["lastState"]["terminated"]["exitCode"] == 137


async def test_unknown_image_waits_with_a_clear_reason(node):
    node.run(make_pod("mystery", [{"name": "c", "image": "registry.example/nothing:1"}]))
    cs = await node.wait_for(lambda: (container_status(node.last("mystery"), "c") or {}).get("state", {}).get(
        "waiting", {}).get("reason") == "ErrImagePull" and container_status(node.last("mystery"), "c"))
    assert "registry.example/nothing:1" in cs["state"]["waiting"]["message"]
    assert "catalogue" in cs["state"]["waiting"]["message"]
    assert "site-packages" not in cs["state"]["waiting"]["message"]  # names the catalogue, not an installed path
    assert node.last("mystery")["phase"] == "Pending"
