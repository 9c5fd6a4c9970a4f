"""Cluster DNS: the Kubernetes DNS specification (schema 1.1.0) answered from a watch-fed cache."""

from nanokube.dns.cache import DnsCache
from nanokube.dns.run import DnsSettings, build_dns, run_dns

__all__ = ["DnsCache", "DnsSettings", "build_dns", "run_dns"]
