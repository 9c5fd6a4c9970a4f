"""The examples in examples/ pass, run as their users run them (their own pytest, the plugin's fixtures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.testing.conftest import plugin_args

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args(),
                           "--rootdir", str(EXAMPLES / name), "--nanokube-server-arg=--dns-upstream=127.0.0.1:9",
                           str(EXAMPLES / name)], capture_output=True, text=True, timeout=600, cwd=EXAMPLES / name)


def test_kopf_operator_example() -> None:
    pytest.importorskip("kopf")
    proc = run_example("kopf-operator")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_services_dns_example() -> None:
    proc = run_example("services-dns")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout
