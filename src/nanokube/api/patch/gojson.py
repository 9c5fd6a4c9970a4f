"""Go-flavoured views of decoded JSON shared by the patch algorithms: type names and %v formatting as Go prints
them, Go's equality on interface{} values, and the errors Kubernetes turns plain Go errors into."""

from __future__ import annotations

from typing import Any

from nanokube.api.errors import ApiError


def go_type(value: Any) -> str:
    """reflect.TypeOf(value) as Go prints it for values decoded into interface{}."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def go_format(value: Any) -> str:
    """fmt's %v for decoded JSON: map[a:1 b:[x y]] with sorted keys."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _go_float(value: float) -> str:
    if value == int(value) and abs(value) < 1e21:
        text = repr(int(value))
        return text if len(text) <= 21 else f"{value:g}"
    return repr(value)


def go_kind(value: Any) -> type:
    """reflect.TypeOf for decoded JSON (dict subclasses count as maps)."""
    if isinstance(value, dict):
        return dict
    return type(value)


def go_same(a: Any, b: Any) -> bool:
    """Go's == on interface{} scalars: equal type and value (so 1 != 1.0 and true != 1)."""
    return type(a) is type(b) and a == b


def deep_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return go_same(a, b)


def invalid_request() -> ApiError:
    """What NewGenericServerResponse(422, ...) gives: the server's own message is dropped."""
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {})


def internal_error(message: str) -> ApiError:
    """A plain Go error reaching the handler: 500 with an empty reason (StatusReasonUnknown)."""
    return ApiError(500, "", message)
