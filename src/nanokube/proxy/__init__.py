"""Service proxy: Services + EndpointSlices -> nftables (netns mode) or asyncio listeners (loopback mode)."""

from nanokube.proxy.run import ProxySettings, run_proxy
from nanokube.proxy.status import ProxyStatus, ServiceProgramState, StatusServer

__all__ = ["ProxySettings", "ProxyStatus", "ServiceProgramState", "StatusServer", "run_proxy"]
