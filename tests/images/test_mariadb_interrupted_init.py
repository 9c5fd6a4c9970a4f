"""The mariadb image survives a first start interrupted at any point (issue 14): the entrypoint, run as the
agent runs it in loopback mode, is killed (its whole process group, as a pod stop does) at seeded random
moments of its first start; every next start must still come up with the root password it was given, and
never with an open root account."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLIENT = shutil.which("mariadb") or shutil.which("mysql")
pytestmark = pytest.mark.skipif(not shutil.which("mariadbd") and not os.path.exists("/usr/sbin/mariadbd"),
                                reason="needs mariadb-server")
PASSWORD = "s3cret"


def start(tmp: Path, address: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NANOKUBE_NETWORK": "loopback", "NANOKUBE_POD_DIR": str(tmp / "pod"),
           "NANOKUBE_MOUNTS": json.dumps({"/var/lib/mysql": str(tmp / "data")}), "NANOKUBE_BIND": address,
           "MARIADB_ROOT_PASSWORD": PASSWORD}
    log = open(tmp / "entrypoint.log", "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "nanokube.images.mariadb_entrypoint"], env=env,
                                stdout=log, stderr=log, start_new_session=True)
    finally:
        log.close()


def kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
    # the group's other members (mariadbd) die a moment later: until then they hold the data dir's lock and the port
    deadline = time.monotonic() + 10
    while (left := group_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left, f"still running after SIGKILL: {left}"


def group_members(pgid: int) -> list[int]:
    """The processes of a process group that have not exited (zombies, waiting to be reaped, have)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry))
    return out


def query(address: str, password: str | None) -> subprocess.CompletedProcess[bytes]:
    assert CLIENT is not None
    auth = [f"-p{password}"] if password is not None else []
    return subprocess.run([CLIENT, "--no-defaults", "-h", address, "-P", "3306", "-uroot", *auth,
                           "--connect-timeout=2", "-e", "SELECT 1"], capture_output=True, timeout=20)


def wait_serving(proc: subprocess.Popen[bytes], address: str, tmp: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(address, PASSWORD).returncode == 0:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the entrypoint exited with {proc.returncode}:\n"
                                 f"{(tmp / 'entrypoint.log').read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    raise AssertionError("mariadb not serving:\n" + (tmp / "entrypoint.log").read_text(errors="replace")[-3000:])


def test_a_first_start_killed_at_random_points_never_breaks_the_volume(tmp_path: Path) -> None:
    rnd = random.Random(14)
    address = f"127.77.{rnd.randint(1, 250)}.{rnd.randint(2, 250)}"
    (tmp_path / "data").mkdir()
    (tmp_path / "pod").mkdir()
    # Kill points spread over the first start (install, temporary server, users, the move into place).
    for at in sorted(rnd.uniform(0.05, 2.5) for _ in range(8)):
        proc = start(tmp_path, address)
        time.sleep(at)
        kill(proc)
        if (tmp_path / "data" / "mysql").is_dir():
            break  # initialised: every later start is an ordinary one
    for attempt in range(2):  # comes up, and again after a kill of the running server
        proc = start(tmp_path, address)
        try:
            wait_serving(proc, address, tmp_path)
            assert query(address, None).returncode != 0, "root without a password was let in"
            assert query(address, "wrong").returncode != 0
        finally:
            kill(proc)
        assert not (tmp_path / "data" / ".nanokube-init").exists(), attempt
