"""kubectl exec and the Python client's stream() against a loopback-mode server: exit codes, stdout/stderr,
the container's environment and working directory, binary stdin, a pty with resize, errors, and no process
left behind when a client goes away."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import websocket
from tests.conftest import Server
from tests.polling import eventually
from tests.procnet import fd_targets
from tests.streaming.conftest import kubectl_run, type_after


def test_exit_codes_pass_through(cluster: Server, sleeper: str) -> None:
    for code in (0, 3, 255):
        done = kubectl_run(cluster, "exec", sleeper, "--", "sh", "-c", f"exit {code}")
        assert done.returncode == code, done.stderr
    done = kubectl_run(cluster, "exec", sleeper, "--", "sh", "-c", "exit 3")
    assert b"command terminated with exit code 3" in done.stderr


def test_stdout_and_stderr_stay_apart(cluster: Server, sleeper: str) -> None:
    done = kubectl_run(cluster, "exec", sleeper, "--", "sh", "-c", "echo out; echo err >&2")
    assert (done.stdout, done.stderr) == (b"out\n", b"err\n")


def test_container_environment_and_working_dir(cluster: Server, sleeper: str) -> None:
    env = kubectl_run(cluster, "exec", sleeper, "--", "env").stdout.decode()
    assert "GREETING=hello-pod" in env.splitlines()
    assert kubectl_run(cluster, "exec", sleeper, "--", "pwd").stdout == b"/tmp\n"


def test_one_mebibyte_through_stdin_and_back(cluster: Server, sleeper: str) -> None:
    data = os.urandom(1 << 20)
    done = kubectl_run(cluster, "exec", "-i", sleeper, "--", "cat", input=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout == data


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_tty_runs_a_shell_that_answers(cluster: Server, sleeper: str) -> None:
    inner = f"kubectl --kubeconfig {cluster.kubeconfig} exec -it {sleeper} -- sh"
    typed = b"stty size; tty; echo answer-$((6*7))\nexit 4\n"
    proc = subprocess.Popen(["script", "-qec", f"stty cols 99 rows 33; {inner}", "/dev/null"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = type_after(proc, b"", typed)  # the shell's prompt
    text = out.decode(errors="replace")
    assert "answer-42" in text and "33 99" in text and "/dev/pts/" in text, text
    assert proc.returncode == 4, text


def _client(cluster: Server):  # type: ignore[no-untyped-def]
    client, api_client = cluster.client()
    return client.CoreV1Api(api_client)


def test_python_client_exec_exit_code_and_stdin(cluster: Server, sleeper: str) -> None:
    from kubernetes.stream import stream

    core = _client(cluster)
    resp = stream(core.connect_get_namespaced_pod_exec, sleeper, "default", command=["sh", "-c", "echo hi; exit 5"],
                  stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=30)
    assert resp.read_stdout() == "hi\n"
    assert resp.returncode == 5
    resp = stream(core.connect_get_namespaced_pod_exec, sleeper, "default", command=["wc", "-c"], stderr=True,
                  stdin=True, stdout=True, tty=False, _preload_content=False, binary=True)
    resp.write_stdin(b"x" * (8 << 20))  # one 8 MiB WebSocket message
    resp.close_channel(0)
    resp.run_forever(timeout=60)
    assert resp.read_stdout().strip() == b"8388608"


def test_python_client_tty_resize(cluster: Server, sleeper: str) -> None:
    from kubernetes.stream import stream

    core = _client(cluster)
    resp = stream(core.connect_get_namespaced_pod_exec, sleeper, "default", command=["sh"], stderr=True,
                  stdin=True, stdout=True, tty=True, _preload_content=False)
    try:
        resp.write_channel(4, json.dumps({"Width": 123, "Height": 45}))
        resp.write_stdin("stty size\n")
        seen = ""
        deadline = time.monotonic() + 30
        while "45 123" not in seen and time.monotonic() < deadline:
            resp.update(timeout=1)
            seen += resp.read_stdout() or ""
        assert "45 123" in seen, seen
        resp.write_stdin("exit\n")
        resp.run_forever(timeout=30)
    finally:
        resp.close()


def _raw_ws(cluster: Server, path: str, protocol: str) -> websocket.WebSocket:
    import ssl

    url = cluster.url.replace("https://", "wss://") + path
    return websocket.create_connection(url, header=[f"Authorization: Bearer {cluster.token}"],
                                       subprotocols=[protocol], sslopt={"cert_reqs": ssl.CERT_NONE}, timeout=30)


def _frames(ws: websocket.WebSocket) -> list[tuple[int, bytes]]:
    out = []
    while True:
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            return out
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return out
        if opcode == websocket.ABNF.OPCODE_TEXT:
            text = data.decode()
            out.append((ord(text[0]) - ord("0"), base64.b64decode(text[1:])))
        elif data:
            out.append((data[0], data[1:]))


def test_v4_and_base64_protocols(cluster: Server, sleeper: str) -> None:
    path = f"/api/v1/namespaces/default/pods/{sleeper}/exec?command=sh&command=-c&command=echo+v4;exit+6&stdout=1"
    ws = _raw_ws(cluster, path, "v4.channel.k8s.io")
    assert ws.subprotocol == "v4.channel.k8s.io"
    frames = _frames(ws)
    assert (1, b"v4\n") in frames
    status = json.loads(next(p for ch, p in frames if ch == 3))
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "6"}]
    ws = _raw_ws(cluster, path.replace("v4", "b64"), "base64.channel.k8s.io")
    assert ws.subprotocol == "base64.channel.k8s.io"
    assert (1, b"b64\n") in _frames(ws)


def test_errors_before_the_upgrade(cluster: Server, sleeper: str) -> None:
    done = kubectl_run(cluster, "exec", sleeper, "-c", "nope", "--", "true")
    assert done.returncode == 1
    assert b"container nope is not valid for pod sleeper" in done.stderr
    done = kubectl_run(cluster, "exec", "ghost", "--", "true")
    assert done.returncode == 1
    assert b'pods "ghost" not found' in done.stderr
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "finished"},
                   "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
                                                                       "command": ["true"]}]}})
    eventually(lambda: b"Succeeded" in kubectl_run(cluster, "get", "pod", "finished", "-o",
                                                  "jsonpath={.status.phase}").stdout, 60, what="pod finished")
    done = kubectl_run(cluster, "exec", "finished", "--", "true")
    assert done.returncode == 1
    assert b"cannot exec into a container in a completed pod" in done.stderr
    # straight to the API (no kubectl-side check): the kubelet's "container not found"
    core = _client(cluster)
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import stream

    with pytest.raises(ApiException) as err:
        stream(core.connect_get_namespaced_pod_exec, "finished", "default", command=["true"], stdout=True)
    assert "404" in str(err.value) and "container not found" in str(err.value)


def _processes_with(marker: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read():
                        out.append(int(entry))
            except OSError:
                continue
    return out


def test_client_gone_mid_stream_leaves_nothing(cluster: Server, sleeper: str) -> None:
    marker = "sleep 997.5"
    for tty in (False, True):
        argv = ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "exec", *(["-it"] if tty else []), sleeper,
                "--", "sh", "-c", f"{marker}; echo never"]
        if tty:
            argv = ["script", "-qc", " ".join(argv[:-1]) + f" '{marker}; echo never'", "/dev/null"]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            eventually(lambda: [p for p in _processes_with(marker) if not _is_client(p)], 30, what="the exec'd command")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        eventually(lambda: not [p for p in _processes_with(marker) if not _is_client(p)], 20,
                 what="the command to be killed with its session")
    assert cluster.proc is not None
    server_pid = cluster.proc.pid
    # the session closes its pty once it has reaped the command: a moment after the command is gone from /proc
    eventually(lambda: not [t for t in fd_targets(server_pid) if t.startswith("/dev/pts") or t == "/dev/ptmx"], 20,
               what="the server to close the session's pty")


def _is_client(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv0 = fh.read().split(b"\0")[0]
    except OSError:
        return True
    return argv0.endswith((b"kubectl", b"script"))


def test_kubectl_cp_both_ways(cluster: Server, sleeper: str, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(10 << 20))
    remote = tmp_path / "remote"  # loopback mode: the pod sees the node's files
    remote.mkdir()
    done = kubectl_run(cluster, "cp", str(source), f"{sleeper}:{remote}/copied.bin", timeout=120)
    assert done.returncode == 0, done.stderr
    assert (remote / "copied.bin").read_bytes() == source.read_bytes()
    back = tmp_path / "out.bin"
    done = kubectl_run(cluster, "cp", f"{sleeper}:{remote}/copied.bin", str(back), timeout=120)
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == source.read_bytes()
