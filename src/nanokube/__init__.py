"""nanokube: Kubernetes Services, for real, on one machine."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Cluster", "ClusterError"]


def __getattr__(name: str) -> Any:
    # `import nanokube` stays cheap (every server and pod start imports it): the testing API loads on first
    # use, by name, so the layering of the components below stays intact (`__init__.pyi` types it).
    if name in __all__:
        return getattr(importlib.import_module("nanokube.testing.cluster"), name)
    raise AttributeError(f"module 'nanokube' has no attribute {name!r}")
