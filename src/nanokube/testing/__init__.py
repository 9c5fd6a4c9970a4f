"""Throwaway clusters for tests: `Cluster` (also `nanokube.Cluster`) and the pytest plugin (`pytest_plugin`)."""

from nanokube.testing.cluster import Cluster, ClusterError

__all__ = ["Cluster", "ClusterError"]
