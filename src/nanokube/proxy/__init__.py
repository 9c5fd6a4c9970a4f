"""Service proxy: Services + EndpointSlices -> nftables (netns mode) or asyncio listeners (loopback mode)."""

from nanokube.proxy.proxier import ProxyStatus, ServiceProgramState
from nanokube.proxy.run import ProxySettings, run_proxy

__all__ = ["ProxySettings", "ProxyStatus", "ServiceProgramState", "run_proxy"]
