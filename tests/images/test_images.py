"""The small-footprint images: the echo server's contract (byte-for-byte JSON, UDP, arguments) now that it runs
on C modules only, and the MariaDB entrypoint's option file (small profile, user's conf.d, opt-out)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nanokube.images import echo, mariadb_entrypoint
from nanokube.images.catalogue import IMAGES_DIR


@pytest.mark.parametrize("value", ["plain", 'quo"te', "back\\slash", "ctl\n\t\r\b\f\x01\x7f", "é", "😀中", ""])
def test_echo_json_is_what_json_dumps_writes(value):
    fields = {"pod": value, "clientPort": 1234, value or "k": value}
    assert echo.json_object(fields) == json.dumps(fields)


@pytest.fixture
def echo_server() -> Iterator[tuple[int, int]]:
    env = {**os.environ, "NANOKUBE_POD_NAME": "echo-1", "NANOKUBE_POD_NAMESPACE": "ns", "NANOKUBE_POD_IP": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(IMAGES_DIR / "echo.py"), "--http-port", "0",
                             "--udp-port=0", "--bind", "127.0.0.1"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "... listening on 127.0.0.1 http <port> udp <port>": the ports it got
        assert "listening on 127.0.0.1" in line, line
        words = line.split()
        yield int(words[words.index("http") + 1]), int(words[words.index("udp") + 1])
    finally:
        proc.terminate()
        assert proc.wait(5) == 0  # SIGTERM is a clean exit


def read_response(conn: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += conn.recv(65536)
    return head, body


def test_echo_answers_http_with_keep_alive_and_udp(echo_server):
    http, udp = echo_server
    with socket.create_connection(("127.0.0.1", http), timeout=5) as conn:
        conn.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        head, first = read_response(conn)
        conn.sendall(b"POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")  # same connection
        _, second = read_response(conn)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Connection: keep-alive" in head
    assert b"Content-Type: application/json" in head
    body = json.loads(first)
    assert body == {"pod": "echo-1", "namespace": "ns", "podIP": "127.0.0.1", "hostname": socket.gethostname(),
                    "clientIP": "127.0.0.1", "clientPort": body["clientPort"], "method": "GET", "path": "/a"}
    assert json.loads(second)["method"] == "POST"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(b"ping", ("127.0.0.1", udp))
        reply = json.loads(s.recv(65536))
        assert reply["pod"] == "echo-1" and reply["clientPort"] == s.getsockname()[1] and "path" not in reply


@pytest.mark.parametrize("args", [["--bogus"], ["--http-port"], ["--udp-port", "x"]])
def test_echo_rejects_bad_arguments_like_argparse(args):
    done = subprocess.run([sys.executable, "-I", "-S", str(IMAGES_DIR / "echo.py"), *args], capture_output=True,
                          text=True, timeout=10)
    assert done.returncode == 2 and "usage: nanokube-echo" in done.stderr


def options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    monkeypatch.setenv("NANOKUBE_NETWORK", "loopback")
    monkeypatch.setenv("NANOKUBE_MOUNTS", json.dumps({"/etc/mysql/conf.d": str(conf)}))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = mariadb_entrypoint.write_options(str(tmp_path))
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"  # mariadbd ignores world-writable option files
    return Path(path).read_text()


def test_mariadb_small_profile_comes_before_the_users_conf_d(tmp_path, monkeypatch):
    text = options(tmp_path, monkeypatch)
    lines = text.splitlines()
    assert "[mariadbd]" in lines and "innodb_buffer_pool_size = 16M" in lines
    assert "innodb_log_buffer_size = 2M" in lines and "performance_schema = OFF" in lines
    assert lines[-1] == f"!includedir {tmp_path / 'conf'}"  # later options win: the user's


def test_mariadb_small_profile_can_be_turned_off(tmp_path, monkeypatch):
    text = options(tmp_path, monkeypatch, NANOKUBE_MARIADB_SMALL="0")
    assert "innodb_buffer_pool_size" not in text and "!includedir" in text


def test_mariadb_host_conf_d_is_not_read_without_a_mount(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOKUBE_NETWORK", "loopback")
    monkeypatch.setenv("NANOKUBE_MOUNTS", "{}")
    assert "!includedir" not in Path(mariadb_entrypoint.write_options(str(tmp_path))).read_text()


def test_catalogue_scripts_load_in_the_isolated_interpreter_they_run_in():
    """Entrypoints run as `python -I -S <script>`: no package on the path, so they may import only the stdlib."""
    scripts = sorted({arg.split("/")[-1] for path in (IMAGES_DIR / "catalogue").glob("*.yaml")
                      for arg in yaml.safe_load(path.read_text()).get("entrypoint") or [] if arg.endswith(".py")})
    assert "mariadb_entrypoint.py" in scripts and "nginx_entrypoint.py" in scripts
    for name in scripts:
        load = ("import importlib.util, sys\n"
                "spec = importlib.util.spec_from_file_location('entry', sys.argv[1])\n"
                "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n")
        done = subprocess.run([sys.executable, "-I", "-S", "-c", load, str(IMAGES_DIR / name)], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, (name, done.stderr)
