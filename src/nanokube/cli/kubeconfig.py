"""Which kubeconfig the CLI's client commands use, and the namespace of its current context."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from nanokube.settings import default_data_dir


def default_kubeconfig() -> Path:
    """$KUBECONFIG (its first entry, as kubectl reads a list), else the default data dir's kubeconfig.yaml."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else default_data_dir() / "kubeconfig.yaml"


def context_namespace(path: Path) -> str:
    """The namespace of the current context, "default" when unset or unreadable."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
        current = config.get("current-context")
        for entry in config.get("contexts") or []:
            if entry.get("name") == current:
                return (entry.get("context") or {}).get("namespace") or "default"
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    return "default"
