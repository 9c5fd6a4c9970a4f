"""docs/tutorial.md's `$` commands, extracted and run as written, in each mode the tutorial claims.

A server runs in a fresh network namespace (so as root it can take the default ports and, in netns mode, not
touch the host's network) with a temp --data-dir; the shell gets the `export KUBECONFIG=...` line the server
printed (the tutorial tells the reader to paste it), works in `examples/article/` and has `nanokube` on PATH.
A command that fails is retried for a while, as a reader would when MariaDB is still starting; `nanokube
explain` must exit 1 exactly where the tutorial shows a PROBLEM verdict. Blocks after a
`<!-- modes: netns -->` comment run in netns mode only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "docs" / "tutorial.md"
MODES = ("loopback", "netns")


@dataclass
class Step:
    command: str
    expected_rc: int
    modes: tuple[str, ...]


def tutorial_steps() -> list[Step]:
    steps: list[Step] = []
    text = TUTORIAL.read_text()
    for match in re.finditer(r"(<!-- modes: ([a-z, ]+) -->\n)?```[a-z]*\n(.*?)```", text, re.S):
        modes = tuple(m.strip() for m in match.group(2).split(",")) if match.group(2) else MODES
        lines = match.group(3).splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            output = []
            for later in lines[i + 1:]:
                if later.startswith("$ "):
                    break
                output.append(later)
            problem = line.startswith("$ nanokube explain") and any("Verdict: PROBLEM" in o for o in output)
            steps.append(Step(line[2:], 1 if problem else 0, modes))
    return steps


def run_in_own_group(argv: list[str], *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run, but whatever it started (a server in the background of a script) is killed with it
    even when the test is interrupted (a timeout kills the script before its EXIT trap can run)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_the_tutorial_has_commands_for_each_mode():
    steps = tutorial_steps()
    assert len(steps) > 30
    assert any(s.modes == ("netns",) for s in steps)
    assert any(s.expected_rc == 1 for s in steps)
    assert not any("127.96.0.10" in s.command or "10.96.0.10" in s.command for s in steps), \
        "take addresses from the cluster, not a mode's literal"


def script_for(mode: str, tmp: Path) -> str:
    lines = []
    for n, step in enumerate(s for s in tutorial_steps() if mode in s.modes):
        tries = 1 if step.expected_rc else 60
        lines.append(textwrap.dedent(f"""\
            echo "@@step {n}"
            rc=1
            for try in $(seq {tries}); do
              {{ {step.command}
              }}; rc=$?
              [ $rc -eq {step.expected_rc} ] && break
              sleep 0.5
            done
            echo "@@rc {n} $rc"
            """))
    body = "\n".join(lines)
    return textwrap.dedent(f"""\
        ip link set lo up
        {sys.executable} -m nanokube server --network {mode} --data-dir {tmp}/data > {tmp}/server.out 2> {tmp}/server.err &
        server=$!
        trap 'kill $server 2>/dev/null; wait $server' EXIT
        for _ in $(seq 600); do grep -q '^export KUBECONFIG=' {tmp}/server.out && break
          kill -0 $server || {{ cat {tmp}/server.err >&2; exit 3; }}; sleep 0.1; done
        eval "$(grep '^export KUBECONFIG=' {tmp}/server.out)"
        cd {REPO}/examples/article
        """) + body


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mysql"),
                    reason="needs root (a fresh network namespace per run) and the mysql client")
def test_tutorial_commands_run_as_written(mode):
    # short: mariadb's socket lives under the data dir, and a Unix socket path holds 107 bytes
    tmp_path = Path(tempfile.mkdtemp(prefix="nktut-", dir="/tmp"))
    try:
        _run_tutorial(mode, tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_tutorial(mode: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nanokube").write_text(f"#!/bin/sh\nexec {sys.executable} -m nanokube \"$@\"\n")
    (bin_dir / "nanokube").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO / "src"))}
    env.pop("KUBECONFIG", None)
    proc = run_in_own_group(["unshare", "--net", "bash", "-c", script_for(mode, tmp_path)], env=env, timeout=800)
    out = proc.stdout
    failed = re.findall(r"^@@rc (\d+) ([^0]\d*)$", out, re.M)
    steps = [s for s in tutorial_steps() if mode in s.modes]
    expected = {str(n): s.expected_rc for n, s in enumerate(steps)}
    wrong = [(steps[int(n)].command, rc) for n, rc in failed if int(rc) != expected[n]]
    wrong += [(steps[int(n)].command, rc) for n, rc in re.findall(r"^@@rc (\d+) (0)$", out, re.M) if expected[n] != 0]
    server_err = (tmp_path / "server.err").read_text()[-3000:] if (tmp_path / "server.err").exists() else ""
    assert len(re.findall(r"^@@rc ", out, re.M)) == len(expected), f"{out[-3000:]}\n{proc.stderr[-3000:]}\n{server_err}"
    assert not wrong, f"commands with the wrong exit code: {wrong}\n{out[-5000:]}\n{proc.stderr[-3000:]}"
    assert "mariadb-deployment" in out and "31111" in out
