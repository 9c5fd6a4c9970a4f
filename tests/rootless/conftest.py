"""A throwaway non-root user with its own copy of the repository, installed by the README's first command.

Made once per test session (as root): `useradd -m`, a clean copy of the working tree in the user's home, then
as that user `bash scripts/setup.sh` with Debian's /usr/bin/python3 first on PATH (apt is skipped: root has
installed the packages). Every process the user still has at the end is killed by PID, then `userdel -r`.
Tests run commands as the user through `User.run` (runuser, a clean environment).
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.article.test_readme_quickstart import clean_copy

REPO = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = Path("/usr/bin/python3")
SKIP_REASON = ("needs root to make a throwaway user" if os.geteuid() != 0 else
               "needs useradd, runuser and Debian's /usr/bin/python3"
               if not (shutil.which("useradd") and shutil.which("runuser") and DEBIAN_PYTHON.exists()) else "")


@dataclass
class User:
    name: str
    uid: int
    home: Path

    @property
    def repo(self) -> Path:
        return self.home / "nanokube"

    @property
    def path(self) -> str:
        """What Debian's ~/.profile gives a login once ~/.local/bin exists, with /usr/bin (python3) first."""
        return f"{self.home}/.local/bin:/usr/local/bin:/usr/bin:/bin"

    def env(self, **extra: str) -> list[str]:
        base = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "PATH": self.path,
                "LANG": "C.UTF-8"}
        return ["env", "-i", *(f"{k}={v}" for k, v in {**base, **extra}.items())]

    def run(self, script: str, *, timeout: float = 120, check: bool = True, **extra_env: str
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["runuser", "-u", self.name, "--", *self.env(**extra_env), "bash", "-c", script],
                              cwd=self.home, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"as {self.name}: exit {proc.returncode}\n$ {script}\nstdout:\n{proc.stdout[-4000:]}"
                                 f"\nstderr:\n{proc.stderr[-4000:]}")
        return proc

    def popen(self, argv: list[str], *, stdout, stderr, **extra_env: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["runuser", "-u", self.name, "--", *self.env(**extra_env), *argv], cwd=self.repo,
                                stdout=stdout, stderr=stderr, start_new_session=True)

    def pids(self) -> list[int]:
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == self.uid:
                        out.append(int(entry))
                except OSError:
                    pass
        return out


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kill_all(user: User) -> None:
    for _ in range(50):
        pids = user.pids()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


@pytest.fixture(scope="session")
def throwaway_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    name = f"nkt{os.getpid() % 100000}{random.randint(0, 99)}"
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, timeout=60)
    entry = pwd.getpwnam(name)
    user = User(name, entry.pw_uid, Path(entry.pw_dir))
    try:
        clean_copy(user.repo)
        subprocess.run(["chown", "-R", f"{name}:{name}", str(user.repo)], check=True, timeout=60)
        setup = user.run("cd ~/nanokube && bash scripts/setup.sh", timeout=600, NANOKUBE_SKIP_APT="1")
        assert (user.home / ".local" / "bin" / "nanokube").exists(), setup.stderr
        yield user
    finally:
        _kill_all(user)
        # the home holds a whole venv (~500 MB): removing it takes over a minute on a loaded machine, so it is
        # removed here without a time limit, and userdel (which would be killed mid-way by one, leaving the
        # user and its locks behind) only drops the account
        shutil.rmtree(user.home, ignore_errors=True)
        subprocess.run(["userdel", name], capture_output=True, timeout=120)
        assert not user.home.exists()
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
