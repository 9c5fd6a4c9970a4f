"""Request bodies decoded without letting them cost more than their size.

The 3 MiB limit on a body is checked on its bytes, but YAML aliases let 300 bytes expand to gigabytes once
encoded ("billion laughs"), and deep nesting runs the recursive composer out of stack. kube-apiserver relies
on go-yaml for both: `yaml: document contains excessive aliasing` (a decode mostly made of alias expansion,
`allowedAliasRatio`) and `yaml: exceeded max depth of N`. This module applies the same rules to the composed
node graph before any object is built, plus a byte budget for what the aliases would expand to.

JSON bodies under Strict or Warn field validation are decoded a second time keeping duplicate keys, so the
strict decoder can report `duplicate field "metadata.name"` as kube-apiserver does.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from nanokube.api import errors
from nanokube.api.openapi_schemas import loads_tracking_duplicates

# What the nested structure may be: kept below what the encoders and Python's stack take (orjson writes at most
# 254 levels); real manifests use a few dozen.
MAX_DEPTH = 200
# An aliased document may expand to no more scalar bytes than a body may hold.
MAX_EXPANDED_BYTES = 3 * 1024 * 1024

# go-yaml's allowedAliasRatio: up to 99% of decoded nodes may come from aliases for documents of up to 400,000
# decodes, scaling down to 10% at 4,000,000.
_RATIO_LOW = 400_000
_RATIO_HIGH = 4_000_000


class BodyError(ValueError):
    """A body refused for what it would cost; the message is go-yaml's."""


def allowed_alias_ratio(decode_count: int) -> float:
    if decode_count <= _RATIO_LOW:
        return 0.99
    if decode_count >= _RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decode_count - _RATIO_LOW) / (_RATIO_HIGH - _RATIO_LOW)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses nesting deeper than MAX_DEPTH (it recurses once per level)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise BodyError(f"yaml: exceeded max depth of {MAX_DEPTH}")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def check_expansion(root: yaml.Node) -> None:
    """Raise BodyError when the node graph (where every alias is a second reference to its anchor's node)
    would expand to excessive aliasing or more than MAX_EXPANDED_BYTES of scalars."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, scalar bytes) of its full expansion

    def expand(node: yaml.Node) -> tuple[int, int]:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.ScalarNode):
            out = (1, len(node.value))
        else:
            count, size = 1, 0
            children: list[yaml.Node] = []
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    children += (key, value)
            else:
                children = list(node.value)
            for child in children:
                c, s = expand(child)
                count += c
                size += s
            out = (count, size)
        sizes[id(node)] = out
        return out

    decoded, scalar_bytes = expand(root)
    aliased = decoded - len(sizes)  # every node decoded beyond the first time is an alias expansion
    if aliased > 100 and decoded > 1000 and aliased / decoded > allowed_alias_ratio(decoded):
        raise BodyError("yaml: document contains excessive aliasing")
    if aliased and scalar_bytes > MAX_EXPANDED_BYTES:
        raise BodyError("yaml: document contains excessive aliasing")


def load_yaml(raw: bytes | str) -> Any:
    """yaml.safe_load within the limits above; raises BodyError or yaml.YAMLError."""
    loader = _BoundedLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node)
        return loader.construct_document(node)
    except RecursionError as exc:  # a stack already deep when the body arrived: still the client's doing
        raise BodyError(f"yaml: exceeded max depth of {MAX_DEPTH}") from exc
    finally:
        loader.dispose()


def load_json(raw: bytes, *, track_duplicates: bool = False) -> Any:
    """orjson.loads; with track_duplicates, objects that repeat a key remember it (orjson checks the
    syntax first, so both parsers agree on what they accept)."""
    obj = orjson.loads(raw)
    if track_duplicates and isinstance(obj, dict):
        return loads_tracking_duplicates(raw)
    return obj


def yaml_error(exc: Exception) -> errors.ApiError:
    return errors.bad_request(f"error converting YAML to JSON: {exc}")
