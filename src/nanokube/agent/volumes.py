"""Pod volumes as host directories: emptyDir, hostPath, secret, configMap, downwardAPI, projected and
persistentVolumeClaim (the PV's hostPath/local directory).

Secret/configMap/downwardAPI/projected contents are written the way kubelet's atomic writer does: files live
in a timestamped directory, ``..data`` points at it and each visible name is a symlink through ``..data``,
so an update swaps one symlink and readers never see a half-written volume.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nanokube.agent.envvars import ContainerConfigError, field_value, resource_value
from nanokube.api.meta import Obj

Getter = Callable[[str, str], Awaitable[Obj | None]]


class VolumeNotReady(Exception):
    """The volume cannot be set up yet (e.g. its PVC is not bound); the pod stays ContainerCreating."""


@dataclass
class VolumeSources:
    get_secret: Getter
    get_configmap: Getter
    get_pvc: Getter
    get_pv: Callable[[str], Awaitable[Obj | None]]
    pod_ip: str = ""
    host_ip: str = ""
    node_allocatable: Mapping[str, str] | None = None
    # (pod, audiences, seconds) -> a token of the pod's ServiceAccount bound to the pod (TokenRequest)
    request_token: Callable[[Obj, list[str], int], Awaitable[str]] | None = None


def _write_atomic(directory: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Make ``directory`` show exactly ``files`` (relative path -> (content, mode))."""
    directory.mkdir(parents=True, exist_ok=True)
    data_link = directory / "..data"
    current = os.readlink(data_link) if data_link.is_symlink() else None
    if current is not None:
        old_dir = directory / current
        if _same_content(old_dir, files):
            return
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns() % 1_000_000_000:09d}"
    new_dir = directory / stamp
    for rel, (content, mode) in files.items():
        target = new_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.chmod(target, mode)
    new_dir.mkdir(exist_ok=True)
    tmp_link = directory / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    os.replace(tmp_link, data_link)
    top_names = {rel.split("/", 1)[0] for rel in files}
    for entry in directory.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.name not in top_names and entry.is_symlink():
            entry.unlink()
    for name in top_names:
        link = directory / name
        if not link.is_symlink():
            os.symlink(f"..data/{name}", link)
    if current is not None and current != stamp:
        shutil.rmtree(directory / current, ignore_errors=True)


def _same_content(old_dir: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    try:
        existing = {str(p.relative_to(old_dir)) for p in old_dir.rglob("*") if p.is_file()}
        if existing != set(files):
            return False
        for rel, (content, mode) in files.items():
            path = old_dir / rel
            if path.read_bytes() != content or (path.stat().st_mode & 0o7777) != mode:
                return False
        return True
    except OSError:
        return False


def _key_files(data: Mapping[str, bytes], items: list[Obj] | None, default_mode: int, optional: bool,
               what: str) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    files = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise ContainerConfigError(f"couldn't find key {key} in {what}")
        files[item.get("path") or key] = (data[key], item.get("mode", default_mode))
    return files


def _secret_bytes(secret: Obj) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    out.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


def _configmap_bytes(cm: Obj) -> dict[str, bytes]:
    out = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


async def _secret_files(pod: Obj, source: Obj, src: VolumeSources, default_mode: int) -> dict[str, tuple[bytes, int]]:
    ns = pod["metadata"].get("namespace", "default")
    name = source.get("secretName") or source.get("name") or ""
    secret = await src.get_secret(ns, name)
    if secret is None:
        if source.get("optional"):
            return {}
        raise ContainerConfigError(f'secret "{name}" not found')
    return _key_files(_secret_bytes(secret), source.get("items"), source.get("defaultMode", default_mode),
                      bool(source.get("optional")), f"Secret {ns}/{name}")


async def _configmap_files(pod: Obj, source: Obj, src: VolumeSources, default_mode: int, *, lenient: bool = False
                           ) -> dict[str, tuple[bytes, int]]:
    ns = pod["metadata"].get("namespace", "default")
    name = source.get("name") or ""
    cm = await src.get_configmap(ns, name)
    if cm is None:
        if source.get("optional") or lenient:
            return {}
        raise ContainerConfigError(f'configmap "{name}" not found')
    return _key_files(_configmap_bytes(cm), source.get("items"), source.get("defaultMode", default_mode),
                      bool(source.get("optional")), f"ConfigMap {ns}/{name}")


def _downward_files(pod: Obj, source: Obj, src: VolumeSources, default_mode: int) -> dict[str, tuple[bytes, int]]:
    files = {}
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for item in source.get("items") or []:
        mode = item.get("mode", source.get("defaultMode", default_mode))
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"].get("fieldPath", ""), pod_ip=src.pod_ip, host_ip=src.host_ip)
        elif "resourceFieldRef" in item:
            value = resource_value(pod, containers[0], item["resourceFieldRef"], src.node_allocatable or {})
        else:
            continue
        files[item["path"]] = (value.encode(), mode)
    return files


def _host_path(hp: Obj) -> Path:
    path = Path(hp.get("path", "/"))
    kind = hp.get("type") or ""
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    elif kind in ("Directory", "File", "Socket") and not path.exists():
        raise VolumeNotReady(f"hostPath type check failed: {path} does not exist")
    return path


async def prepare_volume(pod: Obj, volume: Obj, pod_dir: Path, src: VolumeSources) -> Path:
    """Create or refresh one volume; returns the host directory (or file) that backs it."""
    name = volume["name"]
    target = pod_dir / "volumes" / name
    if "emptyDir" in volume:
        return _host_path({"path": str(target), "type": "DirectoryOrCreate"})
    if "hostPath" in volume:
        return _host_path(volume["hostPath"])
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"].get("claimName", "")
        ns = pod["metadata"].get("namespace", "default")
        pvc = await src.get_pvc(ns, claim)
        if pvc is None:
            raise VolumeNotReady(f'persistentvolumeclaim "{claim}" not found')
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if not pv_name or (pvc.get("status") or {}).get("phase") != "Bound":
            raise VolumeNotReady(f'persistentvolumeclaim "{claim}" is not bound')
        pv = await src.get_pv(pv_name)
        if pv is None:
            raise VolumeNotReady(f'persistentvolume "{pv_name}" not found')
        spec = pv.get("spec") or {}
        path_text = (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")
        if not path_text:
            raise VolumeNotReady(f'persistentvolume "{pv_name}" has no hostPath or local path')
        return _host_path({"path": path_text, "type": "DirectoryOrCreate"})
    if "secret" in volume:
        _write_atomic(target, await _secret_files(pod, volume["secret"], src, 0o644))
        return target
    if "configMap" in volume:
        _write_atomic(target, await _configmap_files(pod, volume["configMap"], src, 0o644))
        return target
    if "downwardAPI" in volume:
        _write_atomic(target, _downward_files(pod, volume["downwardAPI"], src, 0o644))
        return target
    if "projected" in volume:
        projected = volume["projected"]
        mode = projected.get("defaultMode", 0o644)
        files: dict[str, tuple[bytes, int]] = {}
        for source in projected.get("sources") or []:
            if "secret" in source:
                files.update(await _secret_files(pod, source["secret"], src, mode))
            elif "configMap" in source:
                lenient = source["configMap"].get("name") == "kube-root-ca.crt"
                files.update(await _configmap_files(pod, source["configMap"], src, mode, lenient=lenient))
            elif "downwardAPI" in source:
                files.update(_downward_files(pod, source["downwardAPI"], src, mode))
            elif "serviceAccountToken" in source:
                wanted = source["serviceAccountToken"]
                token = "" if src.request_token is None else await src.request_token(
                    pod, [wanted["audience"]] if wanted.get("audience") else [],
                    int(wanted.get("expirationSeconds") or 3600))
                files[wanted.get("path", "token")] = (token.encode(), mode)
        _write_atomic(target, files)
        return target
    raise VolumeNotReady(f"volume {name}: this volume type is not supported by nanokube")


def subpath(base: Path, sub: str) -> Path:
    """A mount's subPath inside its volume; must stay inside the volume."""
    if not sub:
        return base
    resolved = (base / sub).resolve() if not base.is_file() else base
    root = base.resolve()
    if root != resolved and root not in resolved.parents:
        raise ContainerConfigError(f"subPath {sub!r} escapes its volume")
    if not resolved.exists():
        resolved.mkdir(parents=True, exist_ok=True)
    return resolved
