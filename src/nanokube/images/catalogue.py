"""The image catalogue: which local program an image name stands for (pods run programs, not containers).

One YAML file per image. Shipped entries live next to this module in ``catalogue/``; the user's own
directories are read after them, so a user entry with the same name replaces a shipped one.

Entry fields::

    name: mariadb                      # identifies the entry (a user file with the same name overrides)
    patterns: [mariadb, mysql]         # fnmatch patterns against the normalised image name
    entrypoint: ["{python}", "-I", "-S", "{images}/mariadb_entrypoint.py"]   # like a Dockerfile ENTRYPOINT
    cmd: [mariadbd]                    # like a Dockerfile CMD
    env: {PATH: "{python_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    workingDir: /                      # optional

``{python}``, ``{python_bin}`` and ``{images}`` are replaced when loading; ``{pod_name}``,
``{pod_namespace}`` and ``{pod_ip}`` when a container starts (see ``Catalogue.command_for``).
"""

from __future__ import annotations

import fnmatch
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parent / "catalogue"
IMAGES_DIR = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{(python|python_bin|images|pod_name|pod_namespace|pod_ip)\}")


class ImageNotFound(Exception):
    """The image has no catalogue entry and the container gave no command."""

    def __init__(self, image: str, dirs: Iterable[Path]) -> None:
        self.image = image
        own = [str(d) for d in dirs if Path(d).resolve() != SHIPPED_DIR.resolve()]
        where = f"a YAML file in {' or '.join(own)}" if own else "a directory given with --image-dir"
        super().__init__(
            f'image "{image}" is not in the nanokube image catalogue and the container has no command; '
            f"add a catalogue entry (name, patterns, entrypoint, cmd, env) as {where}")


@dataclass(frozen=True)
class ImageEntry:
    name: str
    patterns: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    source: Path | None = None

    def matches(self, image_name: str) -> bool:
        return any(fnmatch.fnmatchcase(image_name, p) for p in self.patterns)


def normalize_image(ref: str) -> str:
    """'docker.io/library/nginx:1.25@sha256:..' -> 'nginx'; 'ghcr.io/x/y:1' -> 'ghcr.io/x/y'."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/",
                   "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name


def _static_values() -> dict[str, str]:
    return {"python": sys.executable, "python_bin": str(Path(sys.executable).parent), "images": str(IMAGES_DIR)}


def substitute(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _as_strings(value: object, what: str, source: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    raise ValueError(f"{source}: {what} must be a list of strings")


def load_entry(path: Path) -> ImageEntry:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError(f"{path}: an image entry needs at least 'name'")
    static = _static_values()
    patterns = _as_strings(data.get("patterns"), "patterns", path) or (data["name"],)
    env = data.get("env") or {}
    if not isinstance(env, dict):
        raise ValueError(f"{path}: env must be a mapping")
    return ImageEntry(
        name=data["name"],
        patterns=patterns,
        entrypoint=tuple(substitute(a, static) for a in _as_strings(data.get("entrypoint"), "entrypoint", path)),
        cmd=tuple(substitute(a, static) for a in _as_strings(data.get("cmd"), "cmd", path)),
        env={str(k): substitute(str(v), static) for k, v in env.items()},
        working_dir=data.get("workingDir"),
        source=path,
    )


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]  # the image's environment (container env is applied over it)
    working_dir: str | None


class Catalogue:
    """Shipped entries plus the user's directories; user directories are re-read when they change."""

    def __init__(self, user_dirs: Iterable[Path] = (), *, shipped_dir: Path = SHIPPED_DIR) -> None:
        self.shipped_dir = shipped_dir
        self.user_dirs = [Path(d) for d in user_dirs]
        self._stamp: tuple[float, ...] | None = None
        self._entries: list[ImageEntry] = []

    @property
    def dirs(self) -> list[Path]:
        return [self.shipped_dir, *self.user_dirs]

    def _current_stamp(self) -> tuple[float, ...]:
        stamp: list[float] = []
        for d in self.dirs:
            try:
                stamp.append(d.stat().st_mtime)
                stamp.extend(p.stat().st_mtime for p in sorted(d.glob("*.yaml")))
            except OSError:
                stamp.append(-1.0)
        return tuple(stamp)

    def entries(self) -> list[ImageEntry]:
        stamp = self._current_stamp()
        if stamp != self._stamp:
            by_name: dict[str, ImageEntry] = {}
            for d in self.dirs:
                for path in sorted(d.glob("*.yaml")) if d.is_dir() else ():
                    try:
                        entry = load_entry(path)
                    except (OSError, ValueError, yaml.YAMLError) as err:
                        log.warning("skipping image entry %s: %s", path, err)
                        continue
                    by_name.pop(entry.name, None)
                    by_name[entry.name] = entry
            # later directories win: look them up first
            self._entries = list(reversed(by_name.values()))
            self._stamp = stamp
        return self._entries

    def lookup(self, image: str) -> ImageEntry | None:
        name = normalize_image(image)
        for entry in self.entries():
            if entry.matches(name):
                return entry
        return None

    def command_for(self, image: str, command: list[str] | None, args: list[str] | None,
                    pod_values: Mapping[str, str]) -> Command:
        """Combine the container's command/args with the image entry the way a container runtime does.

        command replaces the entrypoint (and drops cmd); args replace cmd. Raises ImageNotFound when
        nothing can be run.
        """
        entry = self.lookup(image)
        if entry is None:
            if not command:
                raise ImageNotFound(image, self.dirs)
            return Command(list(command) + list(args or []), {}, None)
        values = {**_static_values(), **pod_values}
        env = {k: substitute(v, values) for k, v in entry.env.items()}
        if command:
            argv = list(command) + list(args or [])
        else:
            tail = list(args) if args else [substitute(a, values) for a in entry.cmd]
            argv = [substitute(a, values) for a in entry.entrypoint] + tail
        if not argv:
            raise ImageNotFound(image, self.dirs)
        return Command(argv, env, entry.working_dir)
