"""The node agent (our kubelet): pods as real processes with their own IP, hostname, volumes, probes and logs."""

from nanokube.agent.agent import run_agent
from nanokube.agent.settings import AgentSettings

__all__ = ["AgentSettings", "run_agent"]
