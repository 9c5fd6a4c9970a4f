"""A kopf operator that defines a CRD, watches its objects and writes their status, against nanokube
(kopf's own KopfRunner, the real kubectl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import module_server
from tests.polling import eventually

kopf_testing = pytest.importorskip("kopf.testing")
OPERATOR = str(Path(__file__).with_name("kopf_greeter.py"))
server = module_server("--network", "loopback", "--components=", "--no-agent")


def greeting(server, name: str) -> dict | None:
    proc = server.kubectl("get", "greetings.example.nanokube.dev", name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def test_kopf_operator_defines_its_crd_and_writes_status(server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig))
    args = ["run", "--standalone", "--namespace", "default", "--verbose", OPERATOR]
    with kopf_testing.KopfRunner(args, timeout=60) as runner:
        eventually(lambda: server.kubectl("get", "crd", "greetings.example.nanokube.dev", check=False).returncode == 0, timeout=60)
        server.kubectl("wait", "--for", "condition=established", "crd/greetings.example.nanokube.dev",
                       "--timeout=30s")
        eventually(lambda: server.kubectl("apply", "-f", "-", check=False, input=(
            "apiVersion: example.nanokube.dev/v1\nkind: Greeting\nmetadata: {name: hello}\n"
            "spec: {name: world}\n")).returncode == 0, timeout=60)
        obj = eventually(lambda: (g := greeting(server, "hello")) and g.get("status", {}).get("message") and g, timeout=60)
        assert obj["status"]["message"] == "Hello, world!"
        assert obj["status"]["greet"] == {"greeted": "world"}
        assert "kopf.zalando.org/KopfFinalizerMarker" in obj["metadata"]["finalizers"]
        rows = [line.split() for line in server.kubectl("get", "greetings").stdout.splitlines()]
        assert rows[0] == ["NAME", "NAME", "MESSAGE"] and rows[1] == ["hello", "world", "Hello,", "world!"]

        server.kubectl("patch", "greeting", "hello", "--type=merge", "-p", '{"spec":{"name":"nanokube"}}')
        eventually(lambda: (greeting(server, "hello") or {}).get("status", {}).get("message")
                   == "Hello again, nanokube!", timeout=60)
        def greeting_events() -> list[tuple[str, str]]:
            items = json.loads(server.kubectl("get", "events", "-o", "json").stdout)["items"]
            return [(e.get("reason"), e.get("message")) for e in items
                    if e["involvedObject"].get("kind") == "Greeting" and e["involvedObject"].get("name") == "hello"]
        eventually(lambda: ("Greeted", "greeted world") in greeting_events(), timeout=30)

        server.kubectl("delete", "greeting", "hello", "--timeout=60s")  # waits for kopf's finalizer
        assert greeting(server, "hello") is None
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0
    assert "goodbye hello" in runner.output
