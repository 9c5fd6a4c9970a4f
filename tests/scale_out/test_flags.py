"""Bad scale-out flags are refused before anything starts: exit 2 and a one-line reason."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import pytest


@pytest.mark.parametrize(("flags", "reason"), [
    (["--datastore-endpoint", "mysql://root@tcp(db:3306)/k3s"], "--datastore-endpoint: 'mysql://root@tcp(db:3306)/k3s' "
                                                                 "is not an etcd URL"),
    (["--datastore-endpoint", "http://127.0.0.1:2379", "--datastore-cafile", "/nonexistent/ca.crt"],
     "--datastore-cafile: /nonexistent/ca.crt: no such file"),
    (["--leader-elect", "--leader-elect-lease-duration", "5s", "--leader-elect-renew-deadline", "10s"],
     "--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline"),
    (["--datastore-prefix", "cluster-a"], "--datastore-prefix: must start with /"),
])
def test_bad_flags_exit_2_with_a_reason(flags: list[str], reason: str) -> None:
    with tempfile.TemporaryDirectory() as data:
        done = subprocess.run([sys.executable, "-m", "nanokube", "server", "--data-dir", data, "--network",
                               "loopback", *flags], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert reason in done.stderr and len(done.stderr.strip().splitlines()) == 1
