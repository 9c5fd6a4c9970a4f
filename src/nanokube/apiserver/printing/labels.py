"""Label maps and label selectors rendered as Kubernetes prints them (labels.Set.String, Selector.String)."""

from __future__ import annotations

from typing import Any

_OPERATORS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


class InvalidSelector(ValueError):
    """metav1.LabelSelectorAsSelector would refuse this selector."""


def format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: `k=v` pairs sorted as whole strings, `<none>` when empty."""
    text = ",".join(sorted(f"{k}={v}" for k, v in (labels or {}).items()))
    return text or "<none>"


def selector_string(selector: dict[str, Any] | None) -> str:
    """LabelSelectorAsSelector(sel).String(): "" for a nil or empty selector; raises InvalidSelector."""
    if not selector:
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), list(expr.get("values") or [])
        if op not in _OPERATORS:
            raise InvalidSelector(f"{op!r} is not a valid label selector operator")
        if op in ("In", "NotIn"):
            if not values:
                raise InvalidSelector("for 'in', 'notin' operators, values set can't be empty")
            requirements.append((key, f"{key}{_OPERATORS[op]}({','.join(sorted(values))})"))
        else:
            if values:
                raise InvalidSelector("values set must be empty for exists and does not exist")
            requirements.append((key, key if op == "Exists" else f"!{key}"))
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def format_label_selector(selector: dict[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: the selector string, `<none>` when empty, `<error>` when invalid."""
    try:
        text = selector_string(selector)
    except InvalidSelector:
        return "<error>"
    return text or "<none>"
