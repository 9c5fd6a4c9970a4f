"""Kubernetes API errors and their wire form, the meta/v1 Status object.

Every error a user can see travels as an `ApiError`; the apiserver turns it into a Status body with
the same code, reason, message and details Kubernetes gives (apimachinery pkg/api/errors/errors.go).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def go_repr(value: Any) -> str:
    """Render a value the way Go's field errors print it (`%v`-ish for scalars, quoted strings).

    A nil bad value is rendered as the *string* "null", quoted (field.Error.ErrorBody swaps nil for "null"
    before formatting strings with %q).
    """
    if value is None:
        return GO_NIL.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    if isinstance(value, GoLiteral):
        return value.text
    return str(value)


@dataclass(frozen=True)
class GoLiteral:
    """A value whose Go `%#v` rendering the caller has already built (e.g. a struct dump)."""

    text: str


def go_json_kind(value: Any) -> str:
    """The kind Go's encoding/json names in "json: cannot unmarshal <kind> into Go value of type ..."."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def go_quote(text: str) -> str:
    """Go's strconv.Quote (what `%q` and `%#v` print for strings): escapes quotes, backslashes, controls."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# Field errors render a nil bad value as the *string* "null", quoted (field.Error.ErrorBody).
GO_NIL = GoLiteral('"null"')


def go_typed_strings(type_name: str, values: list[str] | None) -> GoLiteral:
    """`%#v` of a named string slice, e.g. []core.IPFamily{"IPv4", "IPv6"}."""
    if values is None:
        return GoLiteral(f"[]{type_name}(nil)")
    return GoLiteral(f"[]{type_name}{{" + ", ".join(go_quote(v) for v in values) + "}")


def go_service_port_key(protocol: str, port: int) -> GoLiteral:
    """`%#v` of the core.ServicePort{Protocol, Port} key ValidateService reports for duplicate ports."""
    return GoLiteral(f"core.ServicePort{{Name:\"\", Protocol:{go_quote(protocol)}, AppProtocol:(*string)(nil), "
                     f"Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}")


@dataclass(frozen=True)
class FieldError:
    """One field error (k8s.io/apimachinery/pkg/util/validation/field.Error)."""

    type: str  # FieldValueInvalid, FieldValueRequired, ...
    field: str
    value: Any = None
    detail: str = ""

    def body(self) -> str:
        kind = self.type
        if kind == "FieldValueRequired":
            return "Required value" + (f": {self.detail}" if self.detail else "")
        if kind == "FieldValueForbidden":
            return "Forbidden" + (f": {self.detail}" if self.detail else "")
        if kind == "FieldValueDuplicate":
            return f"Duplicate value: {go_repr(self.value)}"
        if kind == "FieldValueNotSupported":
            text = f"Unsupported value: {go_repr(self.value)}"
            return text + (f": {self.detail}" if self.detail else "")
        if kind == "FieldValueTooMany":
            return f"Too many: {go_repr(self.value)}" + (f": {self.detail}" if self.detail else "")
        if kind == "FieldValueTooLong":
            return "Too long" + (f": {self.detail}" if self.detail else "")
        if kind == "FieldValueTypeInvalid":
            return f"Invalid value: {go_repr(self.value)}" + (f": {self.detail}" if self.detail else "")
        if kind == "InternalError":
            return "Internal error" + (f": {self.detail}" if self.detail else "")
        text = f"Invalid value: {go_repr(self.value)}"
        return text + (f": {self.detail}" if self.detail else "")

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def invalid(path: str, value: Any, detail: str = "") -> FieldError:
    return FieldError("FieldValueInvalid", path, value, detail)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, None, detail)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, None, detail)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", path, value)


def not_supported(path: str, value: Any, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{s}"' for s in sorted(supported)) if supported else ""
    return FieldError("FieldValueNotSupported", path, value, detail)


def too_long(path: str, value: Any, max_len: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, value, f"must have at most {max_len} bytes")


# StatusCause reasons a client acts on.
NAMESPACE_TERMINATING = "NamespaceTerminating"  # a create in a namespace being deleted (403)

# Status codes kube-apiserver only answers through constructors that fill `details` (NewNotFound, NewForbidden,
# NewConflict, NewInvalid, NewGenericServerResponse...): clients read it (kubectl debug dereferences it on a 404).
_ALWAYS_DETAILED = frozenset({403, 404, 405, 409, 422})


@dataclass
class ApiError(Exception):
    """An error with a Kubernetes Status body."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def has_cause(self, reason: str) -> bool:
        """HasStatusCause: whether details.causes names `reason` (e.g. NAMESPACE_TERMINATING)."""
        causes = (self.details or {}).get("causes") or []
        return any(isinstance(c, dict) and c.get("reason") == reason for c in causes)

    def status(self) -> dict[str, Any]:
        # metav1.Status fields are omitempty: an unknown reason ("") or empty message is left out.
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        if self.message:
            body["message"] = self.message
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        elif self.code in _ALWAYS_DETAILED:
            body["details"] = {}
        body["code"] = self.code
        return body


def _details(name: str | None, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    details.update(extra)
    return details


def _qualified(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(group, resource)} "{name}" not found',
                    _details(name, group, resource))


def already_exists(group: str, resource: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(group, resource)} "{name}" already exists',
                    _details(name, group, resource))


def conflict(group: str, resource: str, name: str, why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(group, resource)} "{name}": {why}',
                    _details(name, group, resource))


def qualified_kind(group: str, kind: str) -> str:
    """schema.GroupKind.String(): `Deployment.apps`, plain `Service` for the core group."""
    return f"{kind}.{group}" if group else kind


def invalid_object(group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid with one cause per field error (NewInvalid). The message lists each distinct error once
    (ErrorList.ToAggregate); causes keep every error, duplicates included, as Kubernetes does."""
    texts: list[str] = []
    for err in errors:
        text = str(err)
        if text not in texts:
            texts.append(text)
    message = f"{qualified_kind(group, kind)} {go_quote(name)} is invalid"
    if texts:
        message += ": " + (texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]")
    causes = [{"reason": e.type, "message": e.body(), "field": e.field} for e in errors]
    return ApiError(422, "Invalid", message, _details(name, group, kind, causes=causes))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(message: str = "Request entity too large: limit is 3145728") -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden_request(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}",
                    {"causes": [{"message": message}]})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got "{content_type}")')
