"""What a container is started with: its command from the image catalogue, its environment, its mounts and
its isolation (the pod's namespaces in netns mode; loopback mode's variables otherwise)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from nanokube.agent import process, security
from nanokube.agent.container import ContainerRun
from nanokube.agent.envvars import ContainerConfigError, build_env, expand_command, service_env
from nanokube.agent.etcfiles import pod_hostname
from nanokube.agent.nodecontext import NodeRuntime
from nanokube.agent.sandbox import Sandbox
from nanokube.agent.user_ids import refuse_unmapped_ids
from nanokube.agent.volumes import subpath
from nanokube.api.meta import Obj

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PRIVATE_TMPFS = ("/tmp", "/run")


def _under_private_tmpfs(path: str) -> bool:
    real = os.path.realpath(path)
    return any(real == t or real.startswith(t + "/") for t in PRIVATE_TMPFS)


def runtime_mounts() -> list[tuple[str, str, bool]]:
    """The interpreter and the nanokube package stay visible when they live under a path the pod's private
    tmpfs hides (e.g. a checkout in /tmp): they are bound back, read-only, at the same place."""
    import nanokube

    wanted = {os.path.dirname(os.path.dirname(os.path.realpath(nanokube.__file__))),
              os.path.realpath(sys.prefix), os.path.realpath(sys.exec_prefix)}
    return [(p, p, True) for p in sorted(wanted) if _under_private_tmpfs(p)]


def hidden_paths(rt: NodeRuntime) -> list[str]:
    """What a pod's mount namespace covers with an empty tmpfs: the data dir (the cluster's token, keys, the
    store and every other pod's directory). The pod's own volumes and files are bound back by descriptor."""
    data_dir = os.path.realpath(rt.settings.data_dir)
    return [] if _under_private_tmpfs(data_dir) else [data_dir]


def image_dir_mounts(rt: NodeRuntime) -> list[tuple[str, str, bool]]:
    """The user's image directories inside the hidden data dir (the default DATA_DIR/images), bound back
    read-only: their entries' programs live there."""
    hidden = hidden_paths(rt)
    out = []
    for directory in rt.settings.image_dirs:
        real = os.path.realpath(directory)
        if os.path.isdir(real) and any(real.startswith(h.rstrip("/") + "/") for h in hidden):
            out.append((real, real, True))
    return out


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    isolation: process.Isolation
    image_id: str


async def container_env(rt: NodeRuntime, pod: Obj, c: ContainerRun, sandbox: Sandbox) -> dict[str, str]:
    """The container's declared environment (env, envFrom) plus the Service link variables."""
    if not rt.services_synced():
        raise ContainerConfigError("services have not yet been read at least once, cannot construct envvars")
    spec = pod.get("spec") or {}
    links = spec.get("enableServiceLinks", True) is not False
    svc_env = service_env(rt.services(), pod["metadata"].get("namespace", "default"), links)
    return await build_env(pod, c.spec, services_env=svc_env, get_secret=rt.get_secret,
                           get_configmap=rt.get_configmap, pod_ip=sandbox.ip,
                           host_ip=rt.settings.node_ip, node_allocatable=rt.allocatable)


def volume_mounts(c: ContainerRun, volume_paths: dict[str, Path]) -> list[tuple[str, str, bool]]:
    """(source on the node, mountPath, read-only) for each of the container's volumeMounts."""
    out = []
    for vm in c.spec.get("volumeMounts") or []:
        base = volume_paths.get(vm.get("name", ""))
        if base is None:
            raise ContainerConfigError(f'cannot find volume "{vm.get("name")}" to mount into container '
                                       f'"{c.name}"')
        source = subpath(base, vm.get("subPath") or "")
        out.append((str(source), vm["mountPath"], bool(vm.get("readOnly"))))
    return out


def _ensure_mount_point(sandbox: Sandbox, target: str, source: str) -> None:
    is_dir = os.path.isdir(source)
    real = os.path.realpath(target)
    if _under_private_tmpfs(real):
        return  # made inside the container's own tmpfs by the launcher
    sandbox.ensure_mount_point(real, is_dir)


async def prepare_launch(rt: NodeRuntime, pod: Obj, c: ContainerRun, sandbox: Sandbox, pod_dir: Path,
                         etc: dict[str, Path], volume_paths: dict[str, Path]) -> Launch:
    """Everything `process.start` needs for this container. Raises ImageNotFound or ContainerConfigError."""
    meta = pod["metadata"]
    spec = c.spec
    declared = await container_env(rt, pod, c, sandbox)
    command = expand_command(list(spec.get("command") or []), declared)
    args = expand_command(list(spec.get("args") or []), declared)
    image = spec.get("image") or ""
    pod_values = {"pod_name": meta["name"], "pod_namespace": meta.get("namespace", "default"), "pod_ip": sandbox.ip}
    resolved = rt.catalogue.command_for(image, command, args, pod_values)
    mounts = volume_mounts(c, volume_paths)
    entry = rt.catalogue.lookup(image)
    image_id = f"nanokube-catalogue://{entry.name}" if entry else f"host://{resolved.argv[0]}"
    hostname, _fqdn = pod_hostname(pod, rt.settings.cluster_domain)
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname,
           "HOME": "/root" if os.geteuid() == 0 else os.environ.get("HOME", "/")}
    env.update(resolved.env)
    env.update(declared)
    cwd = spec.get("workingDir") or resolved.working_dir or "/"
    host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
    if rt.netns_mode:
        refuse_unmapped_ids(pod, spec)  # a rootless node with one mapped id: say so instead of failing setuid
    sec = security.resolve(pod, spec, agent_uid=os.geteuid(), namespaced=rt.netns_mode)
    if sec.fs_group is not None and os.geteuid() == 0:
        writable = [Path(source) for source, _target, read_only in mounts if not read_only]
        await asyncio.to_thread(security.apply_fs_group_to, writable, sec.fs_group)
    if rt.netns_mode:
        for source, target, _ro in mounts:
            _ensure_mount_point(sandbox, target, source)
        isolation = process.Isolation(
            enabled=True, netns=None if host_network else sandbox.netns_path,
            hostname=None if host_network else hostname,
            files=[(str(path), target) for target, path in etc.items()] if not host_network else [],
            mounts=mounts + runtime_mounts() + image_dir_mounts(rt), tmpfs=list(PRIVATE_TMPFS) + hidden_paths(rt),
            security=sec.launcher_spec())
    else:
        isolation = process.Isolation(enabled=False, security=sec.launcher_spec())
        env.setdefault("POD_IP", sandbox.ip)
        env.update({"NANOKUBE_NETWORK": "loopback", "NANOKUBE_BIND": sandbox.ip,
                    "NANOKUBE_DNS": rt.settings.cluster_dns, "NANOKUBE_POD_DIR": str(pod_dir),
                    "NANOKUBE_MOUNTS": json.dumps({target: source for source, target, _ in mounts})})
    return Launch(resolved.argv, env, cwd, isolation, image_id)
