"""Label and field selectors: parsing (with Kubernetes' error wording) and matching."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nanokube.api.errors import ApiError, bad_request
from nanokube.api.meta import Obj


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # =, !=, in, notin, exists, !exists
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!exists":
            return self.key not in labels
        if op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        if op in (">", "<"):
            try:
                value = int(labels[self.key])
                bound = int(self.values[0])
            except (KeyError, ValueError):
                return False
            return value > bound if op == ">" else value < bound
        return False


_TOKEN = re.compile(r"\s*(\(|\)|,|==|=|!=|!|[^\s(),!=]+)")


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s+\((.*)\)$")
_EQ_RE = re.compile(r"^([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)$")
_CMP_RE = re.compile(r"^([^\s!=()<>]+)\s*([<>])\s*(-?\d+)$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        if m := _SET_RE.match(part):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(part):
            op = "=" if m.group(2) in ("=", "==") else "!="
            reqs.append(Requirement(m.group(1), op, (m.group(3),)))
        elif m := _CMP_RE.match(part):
            reqs.append(Requirement(m.group(1), m.group(2), (m.group(3),)))
        elif part.startswith("!") and re.fullmatch(r"![^\s!=()]+", part):
            reqs.append(Requirement(part[1:], "!exists"))
        elif re.fullmatch(r"[^\s!=(),]+", part):
            reqs.append(Requirement(part, "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {part!r}")
    return reqs


def selector_from_label_selector(sel: Obj | None) -> list[Requirement] | None:
    """metav1.LabelSelector (matchLabels + matchExpressions) -> requirements. None matches nothing."""
    if sel is None:
        return None
    reqs = [Requirement(k, "=", (v,)) for k, v in (sel.get("matchLabels") or {}).items()]
    for expr in sel.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}[expr["operator"]]
        reqs.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return reqs


def matches_labels(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def selector_string(sel: Obj | None) -> str:
    """Render a metav1.LabelSelector the way kubectl/printers do (`app=web,tier in (a,b)`)."""
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], sorted(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(sorted(parts)) if parts else "<none>"


# -- field selectors ---------------------------------------------------------------------------------

FIELD_SELECTABLE: dict[str, set[str]] = {
    "pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
    "services": {"spec.type", "spec.clusterIP"},
    "events": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
               "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
               "reason", "reportingComponent", "source", "type"},
    "secrets": {"type"},
    "namespaces": {"status.phase"},
    "nodes": {"spec.unschedulable"},
    "replicasets": {"status.replicas"},
    "persistentvolumeclaims": set(),
}


def _field_value(obj: Obj, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None, plural: str, kind: str, version: str = "v1"
                         ) -> Callable[[Obj], bool] | None:
    if not text:
        return None
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_SELECTABLE.get(plural, set())
    reqs: list[tuple[str, str, str]] = []
    for part in _split_top_level(text):
        m = re.match(r"^([^!=]+?)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise ApiError(400, "BadRequest",
                           f'field label not supported: {field}')
        reqs.append((field, "!=" if op == "!=" else "=", value))

    def match(obj: Obj) -> bool:
        for field, op, value in reqs:
            actual = _field_value(obj, field)
            if (actual == value) != (op == "="):
                return False
        return True

    return match
