"""Generic Kubernetes validation: names, labels, annotations, IPs and object metadata.

Messages are the ones apimachinery's util/validation and api/validation produce (v1.32), so a user sees the
same text kubectl would show against a real cluster. Name validators follow Go's ValidateNameFunc shape:
`fn(name, prefix) -> list[str]` where prefix=True means "this is a generateName".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nanokube.api.errors import FieldError, GoLiteral, forbidden, invalid, required, too_long

NameValidator = Callable[[str, bool], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = 63
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_QNAME_RE = re.compile(_QNAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_CONFIG_KEY_RE = re.compile(_CONFIG_KEY_FMT)
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")

_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                      "and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                          "'-' or '.', and must start and end with an alphanumeric character")
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                      "alphabetic character, and end with an alphanumeric character")
_QNAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character")
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"

IP_INVALID_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_INVALID_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
IS_NEGATIVE_MSG = "must be greater than or equal to 0"
FIELD_IMMUTABLE_MSG = "field is immutable"


# --- message builders (apimachinery util/validation) ---------------------------------------------------------

def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def empty_error() -> str:
    return "must be non-empty"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


def _full(regex: re.Pattern[str], value: str) -> bool:
    return regex.fullmatch(value) is not None


# --- string format checks (each returns the list of failure messages, empty when valid) ---------------------

def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _full(_DNS1123_LABEL_RE, value):
        if _full(_DNS1123_SUBDOMAIN_RE, value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_error(DNS1035_LABEL_MAX))
    if not _full(_DNS1035_LABEL_RE, value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """A label key / qualified name: optional DNS-subdomain prefix, '/', then a name part of up to 63 chars."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs.extend("prefix part " + msg for msg in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part " + empty_error())
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _full(_QNAME_RE, name):
        errs.append("name part " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _full(_LABEL_VALUE_RE, value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_config_map_key(value: str) -> list[str]:
    """Keys of Secret/ConfigMap data."""
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_CONFIG_KEY_RE, value):
        errs.append(regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    """IANA_SVC_NAME (named container/target ports); every failing rule is its own message."""
    errs: list[str] = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _full(_PORT_NAME_CHARSET_RE, port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


# --- name validators (Go ValidateNameFunc) --------------------------------------------------------------------

def _mask_trailing_dash(name: str) -> str:
    # Mirrors apimachinery: a generateName's trailing '-' is replaced so the prefix can be checked as a name.
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


validate_namespace_name = name_is_dns_label


# --- IP parsing with Go's net.ParseIP (k8s "sloppy") semantics -----------------------------------------------

_V4_SLOPPY_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)\.(\d+)")


def parse_ip_sloppy(value: str) -> IPAddress | None:
    """Parse like k8s.io/utils/net.ParseIPSloppy: IPv4 octets may carry leading zeros (decimal), no zones.

    IPv4-mapped IPv6 addresses come back as IPv4, as Go's To4() treats them.
    """
    if not isinstance(value, str):
        return None
    for ch in value:
        if ch == ".":
            m = _V4_SLOPPY_RE.fullmatch(value)
            if not m:
                return None
            octets = [int(g) for g in m.groups()]
            if any(o > 255 for o in octets):
                return None
            return ipaddress.IPv4Address(bytes(octets))
        if ch == ":":
            if "%" in value:
                return None
            try:
                addr = ipaddress.IPv6Address(value)
            except ValueError:
                return None
            return addr.ipv4_mapped or addr
    return None


def is_ipv6_string(value: str) -> bool:
    return isinstance(parse_ip_sloppy(value), ipaddress.IPv6Address)


def is_ipv4_string(value: str) -> bool:
    return isinstance(parse_ip_sloppy(value), ipaddress.IPv4Address)


def parse_cidr_sloppy(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    addr_text, _, bits = value.partition("/")
    if not bits.isdigit() or not bits.isascii():
        return None
    addr = parse_ip_sloppy(addr_text)
    if addr is None or (":" in addr_text and isinstance(addr, ipaddress.IPv4Address)):
        # Go keeps mapped addresses as 16-byte IPs in CIDRs; treating them as IPv6 is close enough here.
        try:
            addr = ipaddress.IPv6Address(addr_text)
        except ValueError:
            return None
    prefix = int(bits)
    if prefix > addr.max_prefixlen:
        return None
    return ipaddress.ip_network(f"{addr}/{prefix}", strict=False)


def is_valid_ip(path: str, value: str) -> list[FieldError]:
    if parse_ip_sloppy(value) is None:
        return [invalid(path, value, IP_INVALID_MSG)]
    return []


def is_valid_cidr(path: str, value: str) -> list[FieldError]:
    if parse_cidr_sloppy(value) is None:
        return [invalid(path, value, CIDR_INVALID_MSG)]
    return []


def validate_non_special_ip(value: str, path: str) -> list[FieldError]:
    """Rejects IPs that make no sense as endpoints or externalIPs (ValidateNonSpecialIP)."""
    ip = parse_ip_sloppy(value)
    if ip is None:
        return [invalid(path, value, "must be a valid IP address")]
    errs: list[FieldError] = []
    if ip.is_unspecified:
        errs.append(invalid(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        errs.append(invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if _is_link_local_unicast(ip):
        errs.append(invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if _is_link_local_multicast(ip):
        errs.append(invalid(path, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return errs


def _is_link_local_unicast(ip: IPAddress) -> bool:
    packed = ip.packed
    if isinstance(ip, ipaddress.IPv4Address):
        return packed[0] == 169 and packed[1] == 254
    return packed[0] == 0xFE and (packed[1] & 0xC0) == 0x80


def _is_link_local_multicast(ip: IPAddress) -> bool:
    packed = ip.packed
    if isinstance(ip, ipaddress.IPv4Address):
        return packed[0] == 224 and packed[1] == 0 and packed[2] == 0
    return packed[0] == 0xFF and (packed[1] & 0x0F) == 0x02


# --- field-error producing helpers -----------------------------------------------------------------------------

def validate_dns1123_label(value: str, path: str) -> list[FieldError]:
    return [invalid(path, value, msg) for msg in is_dns1123_label(value)]


def validate_dns1123_subdomain(value: str, path: str) -> list[FieldError]:
    return [invalid(path, value, msg) for msg in is_dns1123_subdomain(value)]


def validate_qualified_name(value: str, path: str) -> list[FieldError]:
    return [invalid(path, value, msg) for msg in is_qualified_name(value)]


def validate_labels(labels: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    """Label maps and selectors: key and value errors are both reported at `path` itself (no key suffix)."""
    errs: list[FieldError] = []
    for key, value in (labels or {}).items():
        errs.extend(invalid(path, key, msg) for msg in is_qualified_name(key))
        text = value if isinstance(value, str) else ""
        errs.extend(invalid(path, text, msg) for msg in is_valid_label_value(text))
    return errs


def validate_annotations(annotations: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    total = 0
    for key, value in (annotations or {}).items():
        errs.extend(invalid(path, key, msg) for msg in is_qualified_name(key.lower()))
        total += len(key.encode()) + len(str(value).encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, "", TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def validate_nonnegative(value: int, path: str) -> list[FieldError]:
    return [invalid(path, value, IS_NEGATIVE_MSG)] if value < 0 else []


def _validate_owner_references(refs: Iterable[Mapping[str, Any]] | None, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    first_controller = ""
    for ref in refs or []:
        api_version = str(ref.get("apiVersion") or "")
        version = api_version.rsplit("/", 1)[-1]
        if not version:
            errs.append(invalid(path + ".apiVersion", api_version, "version must not be empty"))
        if not ref.get("kind"):
            errs.append(invalid(path + ".kind", ref.get("kind") or "", "must not be empty"))
        if not ref.get("name"):
            errs.append(invalid(path + ".name", ref.get("name") or "", "must not be empty"))
        if not ref.get("uid"):
            errs.append(invalid(path + ".uid", ref.get("uid") or "", "must not be empty"))
        if ref.get("controller") is True:
            current = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if first_controller:
                errs.append(invalid(path, GoLiteral("[]v1.OwnerReference{...}"),
                                    "Only one reference can have Controller set to true. Found \"true\" in "
                                    f"references for {first_controller} and {current}"))
            else:
                first_controller = current
    return errs


def _validate_finalizers(finalizers: Iterable[str] | None, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names = list(finalizers or [])
    for name in names:
        errs.extend(invalid(path, name, msg) for msg in is_qualified_name(name))
    if "orphan" in names and "foregroundDeletion" in names:
        errs.append(invalid(path, names, "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs


def _common_meta(meta: Mapping[str, Any], namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            errs.append(required("metadata.namespace"))
        else:
            errs.extend(invalid("metadata.namespace", namespace, msg) for msg in validate_namespace_name(namespace))
    elif namespace:
        errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    generation = meta.get("generation")
    if isinstance(generation, int):
        errs.extend(validate_nonnegative(generation, "metadata.generation"))
    errs.extend(validate_labels(meta.get("labels"), "metadata.labels"))
    errs.extend(validate_annotations(meta.get("annotations"), "metadata.annotations"))
    errs.extend(_validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences"))
    errs.extend(_validate_finalizers(meta.get("finalizers"), "metadata.finalizers"))
    return errs


def validate_object_meta(obj: Mapping[str, Any], namespaced: bool, name_validator: NameValidator) -> list[FieldError]:
    """ValidateObjectMeta on create: generateName, name, namespace, labels, annotations, owners, finalizers."""
    meta = obj.get("metadata") or {}
    errs: list[FieldError] = []
    generate_name = meta.get("generateName") or ""
    if generate_name:
        errs.extend(invalid("metadata.generateName", generate_name, msg)
                    for msg in name_validator(generate_name, True))
    name = meta.get("name") or ""
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
    else:
        errs.extend(invalid("metadata.name", name, msg) for msg in name_validator(name, False))
    errs.extend(_common_meta(meta, namespaced))
    return errs


def validate_object_meta_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """ValidateObjectMetaUpdate: identity fields are immutable; labels/annotations re-checked.

    The "resourceVersion must be specified" rule is left to the store layer: for kinds that allow
    unconditional updates (Services, Secrets, ...) the generic store fills it before validation.
    """
    new_meta = new.get("metadata") or {}
    old_meta = old.get("metadata") or {}
    errs: list[FieldError] = []
    new_gen, old_gen = new_meta.get("generation") or 0, old_meta.get("generation") or 0
    if isinstance(new_gen, int) and isinstance(old_gen, int) and new_gen < old_gen:
        errs.append(invalid("metadata.generation", new_gen, "must not be decremented"))
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds"):
        if (new_meta.get(key) or None) != (old_meta.get(key) or None):
            value = new_meta.get(key)
            errs.append(invalid(f"metadata.{key}", value if value is not None else "", FIELD_IMMUTABLE_MSG))
    errs.extend(validate_labels(new_meta.get("labels"), "metadata.labels"))
    errs.extend(validate_annotations(new_meta.get("annotations"), "metadata.annotations"))
    errs.extend(_validate_owner_references(new_meta.get("ownerReferences"), "metadata.ownerReferences"))
    errs.extend(_validate_finalizers(new_meta.get("finalizers"), "metadata.finalizers"))
    return errs


def parse_port_range(text: str) -> tuple[int, int]:
    """A port range as Kubernetes' utilnet.ParsePortRange reads it (--service-node-port-range): `30000-32767`
    (inclusive), `30000+2767` or a single port -> (base, size). Raises ValueError."""
    text = text.strip()
    try:
        if "-" in text:
            low, high = (int(p) for p in text.split("-", 1))
            if high < low:
                raise ValueError
            base, size = low, high - low + 1
        elif "+" in text:
            low, extra = (int(p) for p in text.split("+", 1))
            base, size = low, extra + 1
        else:
            base, size = int(text), 1
    except ValueError:
        raise ValueError(f"invalid port range {text!r}") from None
    if base < 0 or base + size - 1 > 65535:
        raise ValueError(f"invalid port range {text!r}")
    return base, size

