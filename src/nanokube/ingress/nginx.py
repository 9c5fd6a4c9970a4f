"""nginx as a child process: its own prefix, config and pid file under the data dir; graceful reloads (HUP);
stopped with its parent (and PR_SET_PDEATHSIG should the parent die without stopping it)."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


class NginxError(Exception):
    pass


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        raise NginxError("nginx is not installed (apt-get install nginx-light), or start with --disable ingress")
    return found


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Nginx:
    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.conf = prefix / "nginx.conf"
        self.binary = nginx_binary()
        self.process: asyncio.subprocess.Process | None = None
        self.reloads = 0

    def _prepare(self) -> None:
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "certs"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.prefix / "certs", 0o700)

    async def apply(self, text: str) -> None:
        """Write the config; test it; start nginx or reload it gracefully. A bad config leaves the old one."""
        self._prepare()
        candidate = self.conf.with_suffix(".new")
        candidate.write_text(text)
        code, out = await self._run_test(candidate)
        if code != 0:
            raise NginxError(f"nginx rejected the generated config: {out.strip()[-500:]}")
        os.replace(candidate, self.conf)
        if self.process is None or self.process.returncode is not None:
            await self._start()
        else:
            self.process.send_signal(signal.SIGHUP)
            self.reloads += 1

    async def _run_test(self, conf: Path) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-t", "-q", "-p", str(self.prefix), "-e", str(self.prefix / "error.log"), "-c", str(conf),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace")

    async def _start(self) -> None:
        stale = self.prefix / "nginx.pid"
        stale.unlink(missing_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            self.binary, "-p", str(self.prefix), "-e", str(self.prefix / "error.log"), "-c", str(self.conf),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        log.info("ingress: nginx started (pid %d)", self.process.pid)

    async def wait(self) -> int:
        """Return when nginx exits (its exit status); never returns before it was started."""
        while self.process is None:
            await asyncio.sleep(0.2)
        return await self.process.wait()

    async def stop(self) -> None:
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)  # fast shutdown: the server is going away
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
