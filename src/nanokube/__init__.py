"""nanokube: Kubernetes Services, for real, on one machine."""
