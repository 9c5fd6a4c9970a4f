from nanokube.testing.cluster import Cluster as Cluster
from nanokube.testing.cluster import ClusterError as ClusterError

__all__ = ["Cluster", "ClusterError"]
