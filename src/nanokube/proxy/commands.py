"""Run the networking tools (nft, ip, conntrack), optionally inside a named network namespace."""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Sequence

from nanokube.proxy import libnft

CLONE_NEWNET = 0x40000000


class CommandError(RuntimeError):
    def __init__(self, argv: Sequence[str], code: int, stderr: str) -> None:
        super().__init__(f"{argv[0]} exited {code}: {stderr.strip()[:2000]}")
        self.code = code
        self.stderr = stderr


def enter_netns(name: str) -> None:
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


class Commands:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._lib: libnft.LibNftables | None = None

    async def run(self, argv: Sequence[str], *, input: str | None = None, check: bool = True) -> str:
        netns = self.netns
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            preexec_fn=(lambda: enter_netns(netns)) if netns else None)
        out, err = await proc.communicate(input.encode() if input is not None else None)
        assert proc.returncode is not None
        if check and proc.returncode != 0:
            raise CommandError(argv, proc.returncode, err.decode(errors="replace"))
        return out.decode(errors="replace")

    async def nft(self, script: str, *, in_process: bool = False) -> None:
        """Apply an nft script atomically. `in_process` (for small incremental changes) uses libnftables in this
        process when it is installed, which saves the 8-15 ms start of an `nft` process."""
        lib = self._library() if in_process else None
        if lib is not None:
            code, err = await lib.run(script)
            if code != 0:
                raise CommandError(["nft", "-f", "-"], 1, err)
            return
        await self.run(["nft", "-f", "-"], input=script)

    async def list_json(self, command: str) -> str:
        """`nft -j <command>` (a `list ...`), in this process through libnftables when it is installed."""
        lib = self._library()
        if lib is None:
            return await self.run(["nft", "-j", *command.split()])
        code, out, err = await lib.list_json(command)
        if code != 0:
            raise CommandError(["nft", "-j", *command.split()], code, err)
        return out

    def _library(self) -> libnft.LibNftables | None:
        if not libnft.available():
            return None
        if self._lib is None:
            netns = self.netns
            self._lib = libnft.LibNftables((lambda: enter_netns(netns)) if netns else None)
        return self._lib

    def close(self) -> None:
        if self._lib is not None:
            self._lib.close()
            self._lib = None
