"""Run the networking tools (nft, ip, conntrack), optionally inside a named network namespace."""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Sequence

CLONE_NEWNET = 0x40000000


class CommandError(RuntimeError):
    def __init__(self, argv: Sequence[str], code: int, stderr: str) -> None:
        super().__init__(f"{argv[0]} exited {code}: {stderr.strip()[:2000]}")
        self.code = code
        self.stderr = stderr


def _enter_netns(name: str) -> None:
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


class Commands:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    async def run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True) -> str:
        netns = self.netns
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            preexec_fn=(lambda: _enter_netns(netns)) if netns else None)
        out, err = await proc.communicate(input.encode() if input is not None else None)
        assert proc.returncode is not None
        if check and proc.returncode != 0:
            raise CommandError(argv, proc.returncode, err.decode(errors="replace"))
        return out.decode(errors="replace")

    async def nft(self, script: str) -> None:
        await self.run(["nft", "-f", "-"], input=script)
