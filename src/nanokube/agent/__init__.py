"""The node agent (our kubelet): pods as real processes with their own IP, hostname, volumes, probes and logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanokube.agent.agent import run_agent
    from nanokube.agent.settings import AgentSettings

__all__ = ["AgentSettings", "run_agent"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the reaper process (python -m nanokube.agent.reaper), which only waits on a pipe, does not
    # import the whole agent (aiohttp, the API client, ...) while the server is starting.
    if name == "run_agent":
        from nanokube.agent import agent
        return agent.run_agent
    if name == "AgentSettings":
        from nanokube.agent import settings
        return settings.AgentSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
