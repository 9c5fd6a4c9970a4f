"""Field paths and field sets as structured-merge-diff (sigs.k8s.io/structured-merge-diff/fieldpath) writes them.

A path is a tuple of elements; an element is one of
  ("f", name)                      a struct field or map key          -> f:name
  ("k", ((name, json), ...))       a list-map item by its key fields  -> k:{"name":"x"} (fields sorted by name)
  ("v", json)                      an item of a set list              -> v:"x"
  ("i", index)                     a list item by position            -> i:3
Values inside elements are kept as compact JSON text, so elements hash and compare as SMD's do.
A set is a Python set of paths (each path a member); fieldsV1 is its trie, `.` marking a member with children.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

Element = tuple[str, Any]
Path = tuple[Element, ...]
FieldSet = set[Path]

MEMBER = "."
_KIND_ORDER = {"f": 0, "k": 1, "v": 2, "i": 3}


def value_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def field(name: str) -> Element:
    return ("f", name)


def key_element(fields: dict[str, Any]) -> Element:
    return ("k", tuple(sorted((name, value_json(v)) for name, v in fields.items())))


def value_element(value: Any) -> Element:
    return ("v", value_json(value))


def index_element(index: int) -> Element:
    return ("i", index)


def _value_order(text: str) -> tuple[int, Any]:
    """SMD's value ordering for the scalars keys hold: null, numbers, strings, booleans, then the rest."""
    value = json.loads(text)
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (3, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value.encode())
    return (4, text)


@functools.lru_cache(maxsize=8192)
def element_order(element: Element) -> tuple[Any, ...]:
    kind, value = element
    if kind == "f":
        return (0, value.encode())
    if kind == "k":
        return (1, [(name.encode(), _value_order(v)) for name, v in value])
    if kind == "v":
        return (2, _value_order(value))
    return (3, value)


@functools.lru_cache(maxsize=8192)
def element_label(element: Element) -> str:
    kind, value = element
    if kind == "k":
        return "k:{" + ",".join(f"{json.dumps(name)}:{v}" for name, v in value) + "}"
    return f"{kind}:{value}"


@functools.lru_cache(maxsize=8192)
def parse_label(label: str) -> Element:
    kind, sep, rest = label.partition(":")
    if not sep or kind not in _KIND_ORDER:
        raise ValueError(f"invalid path element {label!r}")
    if kind == "f":
        return ("f", rest)
    if kind == "i":
        return ("i", int(rest))
    decoded = json.loads(rest)
    if kind == "k":
        if not isinstance(decoded, dict):
            raise ValueError(f"invalid key {rest!r}")
        return key_element(decoded)
    return value_element(decoded)


def element_text(element: Element) -> str:
    kind, value = element
    if kind == "f":
        return "." + str(value)
    if kind == "k":
        return "[" + ",".join(f"{name}={v}" for name, v in value) + "]"
    if kind == "v":
        return f"[={value}]"
    return f"[{value}]"


def path_text(path: Path) -> str:
    """Path.String(): .spec.containers[name="nginx"].image"""
    return "".join(element_text(e) for e in path)


# ---------------------------------------------------------------- fieldsV1


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """The fieldsV1 JSON of a set, keys in SMD's order (so output is byte-identical to kube-apiserver's)."""
    trie: dict[Element, Any] = {}
    members: set[int] = set()
    for path in paths:
        node = trie
        for element in path:
            node = node.setdefault(element, {})
        members.add(id(node))
    return _emit(trie, members, include_self=False)


def _emit(node: dict[Element, Any], members: set[int], include_self: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if include_self and node:
        out[MEMBER] = {}
    for element in sorted(node, key=element_order):
        child = node[element]
        out[element_label(element)] = _emit(child, members, id(child) in members)
    return out


def from_fields_v1(tree: Any) -> FieldSet:
    """Decode fieldsV1; ValueError when it is not a well-formed set."""
    out: FieldSet = set()
    _decode(tree, (), out)
    return out


def _decode(tree: Any, prefix: Path, out: FieldSet) -> None:
    if not isinstance(tree, dict):
        raise ValueError("fieldsV1 must be an object")
    if not tree and prefix:
        out.add(prefix)
        return
    for label, sub in tree.items():
        if label == MEMBER:
            if prefix:
                out.add(prefix)
            continue
        _decode(sub, (*prefix, parse_label(label)), out)


def with_prefix(paths: FieldSet, prefix: Path) -> FieldSet:
    """The paths at or under prefix."""
    n = len(prefix)
    return {p for p in paths if p[:n] == prefix}


def without_prefixes(paths: FieldSet, prefixes: Iterable[Path]) -> FieldSet:
    """RecursiveDifference with a set of prefixes: drop every path at or under one of them."""
    cut = list(prefixes)
    if not cut:
        return set(paths)
    return {p for p in paths if not any(p[:len(c)] == c for c in cut)}
