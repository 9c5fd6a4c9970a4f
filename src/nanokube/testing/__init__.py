"""Throwaway clusters for tests: `Cluster` (also `nanokube.Cluster`) and the pytest plugin (`pytest_plugin`).

The package itself imports nothing: the pytest plugin below it loads in every pytest run."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Cluster", "ClusterError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("nanokube.testing.cluster"), name)
    raise AttributeError(f"module 'nanokube.testing' has no attribute {name!r}")
