"""Probes, restarts and logs as kubectl shows them, on a real nanokube server (loopback mode, back-off base 1 s)."""

from __future__ import annotations

import queue
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.agent_e2e.conftest import kubectl_json, loopback_args, pod_processes, table
from tests.conftest import KUBECTL, Server, start_server
from tests.polling import eventually
from tests.procnet import CLOSE_WAIT, tcp_sockets

PERIOD = 1
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


def sh_container(name: str, script: str, **extra: object) -> dict:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


def exec_probe(*argv: str, **timing: int) -> dict:
    return {"exec": {"command": list(argv)}, "periodSeconds": PERIOD, "failureThreshold": 1, **timing}


@pytest.fixture(scope="module")
def files() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="nk-agent-e2e-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def srv(files: Path) -> Iterator[Server]:
    server = start_server(*loopback_args("--backoff-base", "1"))
    pods = [
        {"name": "crasher", "containers": [sh_container("crash", 'echo "run $(date +%s%N)"; exit 1')]},
        {"name": "probed", "terminationGracePeriodSeconds": 2, "containers": [sh_container(
            "app", "exec sleep 3600",
            readinessProbe=exec_probe("test", "-f", str(files / "ready")),
            livenessProbe=exec_probe("test", "!", "-f", str(files / "kill")))]},
        {"name": "ticker", "terminationGracePeriodSeconds": 1, "containers": [
            sh_container("tick", "while true; do echo tick; sleep 0.1; done")]},
        {"name": "talker", "terminationGracePeriodSeconds": 2, "containers": [
            sh_container("app", 'for i in 1 2 3 4 5; do echo "line $i"; done; '
                                'while [ ! -f "$GO" ]; do sleep 0.05; done; rm -f "$GO"; echo after; exit 2',
                         env=[{"name": "GO", "value": str(files / "go")}]),
            sh_container("side", 'echo early; while [ ! -f "$LATE" ]; do sleep 0.05; done; echo late; exec sleep 3600',
                         env=[{"name": "LATE", "value": str(files / "late")}])]},
    ]
    try:
        for spec in pods:
            name = spec.pop("name")
            server.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
        yield server
    finally:
        server.stop()
        assert pod_processes(server.data_dir) == []


def row(srv: Server, pod: str) -> dict[str, str]:
    return table(srv.kubectl("get", "pod", pod).stdout)[0]


def restarts(cell: str) -> int:
    return int(cell.split()[0])


def logs(srv: Server, *args: str) -> str:
    return srv.kubectl("logs", *args).stdout


class PodWatch:
    """`kubectl get pod NAME -w`: the READY column of every update, as kubectl prints it."""

    def __init__(self, srv: Server, pod: str) -> None:
        self.proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(srv.kubeconfig), "get", "pod", pod, "-w",
                                      "--no-headers"], stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def until_ready(self, ready: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"READY never became {ready}") from None
            if line.split()[1] == ready:
                return

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_readiness_flips_ready_within_one_period(srv, files):
    eventually(lambda: row(srv, "probed")["STATUS"] == "Running", 20, what="probed Running")
    watch = PodWatch(srv, "probed")
    try:
        watch.until_ready("0/1")  # readiness starts failed and the file is not there
        (files / "ready").touch()
        began = time.monotonic()
        watch.until_ready("1/1")
        took = time.monotonic() - began
        # the next probe flips it (a second period would be >= 2 s); the margin absorbs a loaded 2-CPU machine
        assert took < PERIOD + 0.8, took
        (files / "ready").unlink()
        began = time.monotonic()
        watch.until_ready("0/1")
        took = time.monotonic() - began
        assert took < PERIOD + 0.8, took
    finally:
        watch.close()
    pod = kubectl_json(srv, "get", "pod", "probed")
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")


def test_liveness_failure_restarts_the_container(srv, files):
    first = kubectl_json(srv, "get", "pod", "probed")["status"]["containerStatuses"][0]
    (files / "kill").touch()
    try:
        eventually(lambda: restarts(row(srv, "probed")["RESTARTS"]) > first["restartCount"], 15,
                   what="a liveness restart")
    finally:
        (files / "kill").unlink()
    status = kubectl_json(srv, "get", "pod", "probed")["status"]["containerStatuses"][0]
    terminated = status["lastState"]["terminated"]
    assert terminated["exitCode"] == 143 and terminated["reason"] == "Error"  # SIGTERM ended `sleep`
    eventually(lambda: "running" in kubectl_json(srv, "get", "pod", "probed")["status"]["containerStatuses"][0][
        "state"], 15, what="running again")


def test_crashing_container_shows_restarts_and_crash_loop_back_off(srv):
    def looping() -> dict[str, str] | None:
        r = row(srv, "crasher")
        return r if r["STATUS"] == "CrashLoopBackOff" and restarts(r["RESTARTS"]) >= 2 else None

    r = eventually(looping, 20, 0.05, what="CrashLoopBackOff with 2 restarts")
    assert re.fullmatch(r"\d+ \(\d+s ago\)", r["RESTARTS"]), r["RESTARTS"]
    assert r["READY"] == "0/1"
    status = kubectl_json(srv, "get", "pod", "crasher")["status"]
    cs = status["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "back-off" in cs["state"]["waiting"]["message"]
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert status["phase"] == "Running"
    # kubelet's validateContainerLogStatus: while backing off, both read the run lastState.terminated describes
    for _ in range(5):
        before = kubectl_json(srv, "get", "pod", "crasher")["status"]["containerStatuses"][0]
        current, previous = logs(srv, "crasher"), logs(srv, "crasher", "--previous")
        after = kubectl_json(srv, "get", "pod", "crasher")["status"]["containerStatuses"][0]
        if before["restartCount"] == after["restartCount"] and "waiting" in after["state"]:
            break
    assert previous.startswith("run ") and current == previous
    ran_at = int(previous.split()[1]) / 1e9
    terminated = after["lastState"]["terminated"]
    started, finished = (datetime.fromisoformat(terminated[k].replace("Z", "+00:00")).timestamp()
                         for k in ("startedAt", "finishedAt"))
    assert started - 1 <= ran_at <= finished + 1, (terminated, previous)


def test_logs_follow_then_previous(srv, files):
    eventually(lambda: logs(srv, "talker", "-c", "app") == "".join(f"line {i}\n" for i in range(1, 6)), 20,
               what="talker's first lines")
    follower = subprocess.Popen([KUBECTL, "--kubeconfig", str(srv.kubeconfig), "logs", "-f", "talker", "-c", "app"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert [follower.stdout.readline() for _ in range(5)] == [f"line {i}\n" for i in range(1, 6)]
        (files / "go").touch()  # the container prints "after" and exits: the stream follows it to the end
        assert follower.stdout.readline() == "after\n"
        assert follower.wait(10) == 0
        assert follower.stdout.read() == ""
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    previous = "".join(f"line {i}\n" for i in range(1, 6)) + "after\n"
    eventually(lambda: logs(srv, "talker", "-c", "app", "--previous") == previous, 15, what="--previous")
    eventually(lambda: logs(srv, "talker", "-c", "app") == previous[:-len("after\n")], 15, what="the new run")
    assert restarts(row(srv, "talker")["RESTARTS"]) == 1


def test_logs_container_tail_timestamps_since(srv, files):
    first = eventually(lambda: logs(srv, "talker", "-c", "side", "--timestamps"), 20, what="side's first line")
    age = time.time() - datetime.fromisoformat(first.split(".", 1)[0]).replace(tzinfo=UTC).timestamp()
    if age < 3:
        time.sleep(3 - age)  # --since has whole seconds: "early" must be older than the window
    (files / "late").touch()
    eventually(lambda: logs(srv, "talker", "-c", "side") == "early\nlate\n", 20, what="side's late line")
    assert logs(srv, "talker", "-c", "side", "--since=2s") == "late\n"
    assert logs(srv, "talker", "-c", "side", "--since=1h") == "early\nlate\n"
    assert logs(srv, "talker", "-c", "app", "--tail", "2").endswith("line 4\nline 5\n")
    assert logs(srv, "talker", "-c", "app", "--tail=2").count("\n") == 2
    stamped = logs(srv, "talker", "-c", "side", "--timestamps").splitlines()
    assert [STAMP.sub("", line) for line in stamped] == ["early", "late"]
    assert all(STAMP.match(line) for line in stamped)
    missing = srv.kubectl("logs", "talker", "-c", "nope", check=False)
    assert missing.returncode != 0 and "nope" in missing.stderr


def test_post_start_and_pre_stop_hooks_run(srv: Server, files: Path) -> None:
    started, stopping = files / "poststart", files / "prestop"
    hook = "echo {what} $HOSTNAME > {path}"
    srv.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hooked"}, "spec": {
        "terminationGracePeriodSeconds": 2,
        "containers": [sh_container("app", "exec sleep 3600", lifecycle={
            "postStart": {"exec": {"command": ["sh", "-c", hook.format(what="started", path=started)]}},
            "preStop": {"exec": {"command": ["sh", "-c", hook.format(what="stopping", path=stopping)]}}})]}})
    eventually(lambda: started.exists() and started.read_text().strip(), what="the postStart hook")
    assert started.read_text().split()[0] == "started"
    eventually(lambda: kubectl_json(srv, "get", "pod", "hooked")["status"].get("phase") == "Running",
               what="hooked Running")
    assert not stopping.exists()
    srv.kubectl("delete", "pod", "hooked", "--wait=true", timeout=30)
    assert stopping.read_text().split()[0] == "stopping"


def test_clients_leaving_a_follow_or_a_watch_are_not_errors(srv):
    """A client going away mid-stream is normal: at most a debug line, never an ERROR with a traceback."""
    eventually(lambda: "tick" in logs(srv, "ticker"), 20, what="ticker's first line")
    assert srv.proc is not None
    server_pid = srv.proc.pid
    left: set[tuple[str, int]] = set()  # the followers' ends of their connections to the server
    for argv in (["logs", "-f", "ticker"], ["get", "pods", "-w"]):
        follower = subprocess.Popen([KUBECTL, "--kubeconfig", str(srv.kubeconfig), *argv], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
        try:
            assert follower.stdout is not None and follower.stdout.readline()
            left |= {s.local for s in tcp_sockets(follower.pid) if s.remote[1] == srv.api_port}
        finally:
            follower.kill()
            follower.wait(10)
    assert left
    # the next write into a dead stream is where the server notices: the ticker writes every 0.1 s, and a pod
    # update reaches the watch
    srv.kubectl("annotate", "pod", "ticker", "poke=1", "--overwrite")

    def noticed() -> bool:
        """The server closed its side of both streams, and of anything else a peer closed (the apiserver's
        connection to the node's log server)."""
        held = tcp_sockets(server_pid)
        return not [s for s in held if s.remote in left or s.state == CLOSE_WAIT]
    eventually(noticed, 30, what="the server to close the streams the clients left")
    assert " ERROR " not in srv.logs()


def test_succeeded_pod_is_not_ready(srv: Server) -> None:
    """As kubelet reports it: a pod whose containers all exited 0 is Succeeded with Ready False (PodCompleted)."""
    client, api_client = srv.client()
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "done"},
                                           "spec": {"restartPolicy": "Never",
                                                    "containers": [sh_container("once", "echo ok")]}})
    pod = eventually(lambda: (p := core.read_namespaced_pod("done", "default")).status.phase == "Succeeded" and p,
                     30, what="done Succeeded")
    conditions = {c.type: c for c in pod.status.conditions}
    assert (conditions["Ready"].status, conditions["Ready"].reason) == ("False", "PodCompleted")
    assert (conditions["ContainersReady"].status, conditions["ContainersReady"].reason) == ("False", "PodCompleted")
    r = row(srv, "done")
    assert (r["READY"], r["STATUS"]) == ("0/1", "Completed")
