"""Where a container path really is, for image entrypoints running in loopback mode.

There volumes are not mounted: the agent passes `NANOKUBE_MOUNTS` (mountPath -> host directory, JSON) and an
entrypoint maps the paths it uses through host_path(). In netns mode the variable is absent and paths are
returned unchanged.
"""

from __future__ import annotations

import json
import os


def host_path(path: str) -> str:
    """The host path behind `path`: the longest mountPath containing it decides."""
    mounts = json.loads(os.environ.get("NANOKUBE_MOUNTS") or "{}")
    best = ""
    for mount_path in mounts:
        if (path == mount_path or path.startswith(mount_path.rstrip("/") + "/")) and len(mount_path) > len(best):
            best = mount_path
    return mounts[best] + path[len(best):] if best else path
