"""A container's securityContext as the kubelet and runc apply it: who it runs as, which capabilities it keeps,
no_new_privs, a read-only root filesystem, and fsGroup ownership of its volumes.

Pure decisions here (what to apply, or the kubelet's refusal); the launcher applies them in the child, after
the mounts and before exec, in this order: groups, gid, uid, capabilities, no_new_privs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanokube.agent.envvars import ContainerConfigError
from nanokube.api.meta import Obj

# The capabilities a container runtime (containerd, CRI-O, Docker) gives a container by default; the others
# (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE, ...) only through capabilities.add or privileged.
DEFAULT_CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
CAPABILITY_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}


@dataclass
class Security:
    """What the launcher applies to one container (None: leave as the agent's own)."""

    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)  # supplementalGroups + fsGroup
    capabilities: list[int] | None = None  # the set kept (bounding, and effective/permitted for uid 0)
    no_new_privs: bool = False
    read_only_root: bool = False
    fs_group: int | None = None

    def launcher_spec(self) -> Obj:
        return {"uid": self.uid, "gid": self.gid, "groups": self.groups, "capabilities": self.capabilities,
                "no_new_privs": self.no_new_privs, "read_only_root": self.read_only_root}


def _merged(pod: Obj, container: Obj) -> tuple[Obj, Obj]:
    return (pod.get("spec") or {}).get("securityContext") or {}, container.get("securityContext") or {}


def capability_set(sc: Obj) -> list[int]:
    """The default set, less `drop`, plus `add` ("ALL" in either means every capability), as runc builds it."""
    caps = sc.get("capabilities") or {}
    names = [str(n).upper() for n in caps.get("drop") or []]
    added = [str(n).upper() for n in caps.get("add") or []]
    kept = set() if "ALL" in names else {c for c in DEFAULT_CAPABILITIES if c not in names and
                                          c.removeprefix("CAP_") not in names}
    if "ALL" in added:
        kept = set(CAPABILITY_NUMBERS)
    for name in added:
        full = name if name.startswith("CAP_") else "CAP_" + name
        if full in CAPABILITY_NUMBERS:
            kept.add(full)
    return sorted(CAPABILITY_NUMBERS[c] for c in kept)


def pod_label(pod: Obj) -> str:
    """format.Pod: name_namespace(uid)."""
    md = pod.get("metadata") or {}
    return f"{md.get('name', '')}_{md.get('namespace', 'default')}({md.get('uid', '')})"


def resolve(pod: Obj, container: Obj, *, agent_uid: int, namespaced: bool) -> Security:
    """The container's Security; raises ContainerConfigError with the kubelet's words when it must not start.

    agent_uid: who the agent runs as (the user a container runs as unless told otherwise, "the image's user").
    namespaced: netns mode (capabilities, no_new_privs and a read-only root are applied in the launcher).
    """
    pod_sc, sc = _merged(pod, container)

    def pick(key: str) -> Any:
        return sc[key] if sc.get(key) is not None else pod_sc.get(key)

    uid, gid = pick("runAsUser"), pick("runAsGroup")
    name = container.get("name", "")
    if pick("runAsNonRoot"):
        if uid == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy (pod: \"{pod_label(pod)}\", "
                                       f"container: {name})")
        if uid is None and agent_uid == 0:
            raise ContainerConfigError(f"container has runAsNonRoot and image will run as root (pod: "
                                       f"\"{pod_label(pod)}\", container: {name})")
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
    fs_group = pod_sc.get("fsGroup")
    if fs_group is not None and int(fs_group) not in groups:
        groups.append(int(fs_group))
    if agent_uid != 0:
        wanted = [("runAsUser", uid, os.getuid()), ("runAsGroup", gid, os.getgid())]
        for field_name, value, own in wanted:
            if value is not None and int(value) != own:
                raise ContainerConfigError(
                    f"{field_name} {value} cannot be honoured: nanokube runs as uid {os.getuid()} without "
                    f"privileges (loopback mode), so its pods run as that user; remove {field_name} or run "
                    "nanokube as root")
        groups = []
    if uid is not None and gid is None and agent_uid == 0:
        gid = 0  # runc: without runAsGroup, the user's group in the image's /etc/passwd, else 0
    security = Security(uid=int(uid) if uid is not None else None, gid=int(gid) if gid is not None else None,
                        groups=groups, fs_group=int(fs_group) if fs_group is not None else None)
    if namespaced:
        privileged = bool(sc.get("privileged"))
        security.capabilities = None if privileged else capability_set(sc)
        security.no_new_privs = sc.get("allowPrivilegeEscalation") is False
        security.read_only_root = bool(sc.get("readOnlyRootFilesystem"))
    return security


def apply_fs_group_to(paths: list[Path], gid: int) -> None:
    for path in paths:
        if path.is_dir():
            apply_fs_group(path, gid)


def apply_fs_group(path: Path, gid: int) -> None:
    """The kubelet's volume ownership for fsGroup: group gid, group read/write (+x on directories), and
    setgid on directories so new files inherit the group."""
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            try:
                st = os.lstat(name)
                if os.path.islink(name):
                    continue
                os.chown(name, -1, gid)
                mode = st.st_mode & 0o7777
                if os.path.isdir(name):
                    os.chmod(name, mode | 0o2070)
                else:
                    os.chmod(name, mode | 0o060)
            except OSError:
                continue
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
