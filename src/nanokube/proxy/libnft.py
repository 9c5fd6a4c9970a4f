"""libnftables in-process: the library the `nft` tool is built on, loaded with ctypes.

An incremental sync is a handful of set/map element changes; starting `nft -f -` for it costs 8-15 ms of process
start-up (bench/RESULTS-proxy-shift.md), the same change through a long-lived libnftables context 0.1-0.6 ms.
The context lives in one dedicated thread (which entered the proxy's network namespace, when it has one, before
creating it: its netlink socket belongs to that namespace); calls release the GIL while the kernel works.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)
OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON


@functools.cache
def _load() -> ctypes.CDLL | None:
    """The library, loaded on first use (not at import: loopback mode never needs it)."""
    try:
        lib = ctypes.CDLL("libnftables.so.1")
    except OSError:
        return None
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    lib.nft_ctx_output_get_flags.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    return lib


def available() -> bool:
    """False where the library is missing (then use the nft tool)."""
    return _load() is not None


class LibNftables:
    """One libnftables context (check `available()` first)."""

    def __init__(self, enter_netns: object = None) -> None:
        """`enter_netns`: a callable run first in the context's thread (to setns into the proxy's namespace)."""
        self._ctx: int | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="libnftables",
                                        initializer=self._init, initargs=(enter_netns,))

    def _init(self, enter_netns: object) -> None:
        if callable(enter_netns):
            enter_netns()
        lib = _load()
        assert lib is not None
        ctx = lib.nft_ctx_new(0)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self._ctx = ctx

    def _run(self, script: bytes) -> tuple[int, str]:
        lib = _load()
        assert lib is not None and self._ctx is not None
        code = lib.nft_run_cmd_from_buffer(self._ctx, script)
        err = lib.nft_ctx_get_error_buffer(self._ctx) or b""
        lib.nft_ctx_get_output_buffer(self._ctx)  # drain: buffered output accumulates otherwise
        return code, err.decode(errors="replace")

    async def run(self, script: str) -> tuple[int, str]:
        """(exit code as the tool's: 0 = applied, the error text nft would print)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, script.encode())

    def _list_json(self, command: bytes) -> tuple[int, str, str]:
        lib = _load()
        assert lib is not None and self._ctx is not None
        flags = lib.nft_ctx_output_get_flags(self._ctx)
        lib.nft_ctx_output_set_flags(self._ctx, flags | OUTPUT_JSON)  # only for this call: scripts stay text
        try:
            code = lib.nft_run_cmd_from_buffer(self._ctx, command)
            out = lib.nft_ctx_get_output_buffer(self._ctx) or b""
            err = lib.nft_ctx_get_error_buffer(self._ctx) or b""
        finally:
            lib.nft_ctx_output_set_flags(self._ctx, flags)
        return code, out.decode(errors="replace"), err.decode(errors="replace")

    async def list_json(self, command: str) -> tuple[int, str, str]:
        """A `list ...` command's output as `nft -j` prints it: (exit code, JSON text, error text)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._list_json, command.encode())

    def _free(self) -> None:
        lib = _load()
        if self._ctx is not None and lib is not None:
            lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def close(self) -> None:
        try:
            self._pool.submit(self._free).result(timeout=5)
        except RuntimeError:
            pass  # already shut down
        self._pool.shutdown(wait=True)
