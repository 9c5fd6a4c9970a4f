"""Nothing outlives the node agent: a small guardian process that kills its pods when the agent dies.

The agent starts `python -m nanokube.agent.reaper PODS_DIR` in a session of its own (so a signal to the
server's process group does not reach it) with two inherited descriptors: the read end of a pipe whose write
end only the agent holds, and the lock on PODS_DIR/.reaper.lock. The kernel closes the pipe whenever the agent
ends, kill -9 included; the reaper then does what a restarted agent would do first (`clean_leftovers`: kill
every recorded and every marked process of each sandbox, delete pod networks and mount points) and exits,
which releases the lock. A new agent on the same data dir takes the lock before it starts any pod, so a reaper
still cleaning can never kill the new agent's pods.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

LOCK_NAME = ".reaper.lock"
LOCK_WAIT = 60.0  # a reaper of a killed agent needs well under this to clean up


class Guardian:
    """The agent's side: the lock and the pipe; `release()` on a clean stop (pods already stopped)."""

    def __init__(self, lock_fd: int, pipe_w: int, proc: subprocess.Popen[bytes]) -> None:
        self.lock_fd, self.pipe_w, self.proc = lock_fd, pipe_w, proc

    def release(self) -> None:
        for fd in (self.pipe_w, self.lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def _take_lock(path: Path, timeout: float) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise RuntimeError(f"{path}: the pods of an earlier agent on this data dir are still being "
                                   "cleaned up (or that agent still runs)") from None
            time.sleep(0.02)


async def start_guardian(pods_dir: Path) -> Guardian:
    """Wait for any reaper of an earlier agent to finish, then start ours. Call before starting pods."""
    import asyncio  # here and in _main only: the reaper process itself waits on its pipe without asyncio

    return await asyncio.to_thread(_start_guardian, pods_dir)


def _start_guardian(pods_dir: Path) -> Guardian:
    pods_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = _take_lock(pods_dir / LOCK_NAME, LOCK_WAIT)
    pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)  # pods never inherit the write end: only the agent holds it
    try:
        proc = subprocess.Popen([sys.executable, "-m", "nanokube.agent.reaper", str(pods_dir), str(pipe_r),
                                 str(lock_fd)], pass_fds=(pipe_r, lock_fd), start_new_session=True,
                                stdin=subprocess.DEVNULL)
    except BaseException:
        for fd in (pipe_r, pipe_w, lock_fd):
            os.close(fd)
        raise
    os.close(pipe_r)
    return Guardian(lock_fd, pipe_w, proc)


def _main(pods_dir: str, pipe_r: int, _lock_fd: int) -> None:
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # only the pipe tells the reaper to act
        signal.signal(sig, signal.SIG_IGN)
    while os.read(pipe_r, 4096):
        pass
    import asyncio

    from nanokube.agent.sandbox import clean_leftovers

    asyncio.run(clean_leftovers(Path(pods_dir)))
    # exiting closes _lock_fd: a new agent may start its pods now


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
