"""Service proxy: Services + EndpointSlices -> nftables (netns mode) or asyncio listeners (loopback mode)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanokube.proxy.run import ProxySettings, run_proxy
    from nanokube.proxy.status import ProxyStatus, ServiceProgramState, StatusServer

__all__ = ["ProxySettings", "ProxyStatus", "ServiceProgramState", "StatusServer", "run_proxy"]


def __getattr__(name: str) -> Any:
    # Lazy, so that a proxy worker process (python -m nanokube.proxy.worker_process) does not import the API client.
    if name in ("ProxySettings", "run_proxy"):
        from nanokube.proxy import run
        return getattr(run, name)
    if name in ("ProxyStatus", "ServiceProgramState", "StatusServer"):
        from nanokube.proxy import status
        return getattr(status, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
