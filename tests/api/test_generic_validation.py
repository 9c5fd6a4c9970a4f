"""Generic name/label/IP/metadata checks produce apimachinery's exact messages."""

from __future__ import annotations

import pytest

from nanokube.api.errors import go_quote, go_repr
from nanokube.api.validation import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    is_valid_port_name,
    name_is_dns1035_label,
    name_is_dns_subdomain,
    parse_ip_sloppy,
    validate_non_special_ip,
    validate_object_meta,
    validate_object_meta_update,
)


def test_regex_messages_have_the_double_space_before_or() -> None:
    assert is_dns1035_label("1abc") == [
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
        "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
        "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
    assert is_dns1123_subdomain("-x") == [
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]


def test_dns_label_lengths_and_dots() -> None:
    assert is_dns1123_label("a.b") == ["must not contain dots"]
    assert is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    assert is_dns1123_label("abc") == [] and is_dns1123_label("123") == []
    assert is_dns1035_label("a" * 63) == [] and is_dns1035_label("a" * 64) == ["must be no more than 63 characters"]
    assert is_dns1123_subdomain("a" * 254)[0] == "must be no more than 253 characters"


def test_generate_name_prefix_may_end_in_dash() -> None:
    assert name_is_dns1035_label("web-", True) == []
    assert name_is_dns1035_label("web-", False) != []
    assert name_is_dns_subdomain("pod-", True) == []


def test_qualified_names() -> None:
    assert is_qualified_name("app.kubernetes.io/name") == []
    assert is_qualified_name("/name") == ["prefix part must be non-empty"]
    assert is_qualified_name("a/b/c")[0].startswith("a qualified name must consist of alphanumeric characters")
    assert is_qualified_name("a/b/c")[0].endswith(" with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")
    assert is_qualified_name("x" * 64) == ["name part must be no more than 63 characters"]
    assert is_qualified_name("Example.com/x")[0].startswith("prefix part a lowercase RFC 1123 subdomain")


def test_label_values() -> None:
    assert is_valid_label_value("") == []
    assert is_valid_label_value("my_value.1") == []
    assert len(is_valid_label_value("-" + "x" * 63)) == 2


def test_port_names_report_every_rule() -> None:
    assert is_valid_port_name("http") == []
    assert is_valid_port_name("--") == [
        "must contain at least one letter (a-z)",
        "must not contain consecutive hyphens",
        "must not begin or end with a hyphen",
    ]


@pytest.mark.parametrize(("text", "parsed"), [
    ("10.96.0.1", "10.96.0.1"), ("010.096.000.001", "10.96.0.1"), ("::ffff:10.0.0.1", "10.0.0.1"),
    ("fd00::1", "fd00::1"), ("10.96.0.256", None), ("10.96.0", None), ("fe80::1%eth0", None), ("", None),
    (" 10.0.0.1", None),
])
def test_sloppy_ip_parsing(text: str, parsed: str | None) -> None:
    ip = parse_ip_sloppy(text)
    assert (str(ip) if ip is not None else None) == parsed


def test_special_ips() -> None:
    assert [str(e) for e in validate_non_special_ip("::1", "x")] == [
        'x: Invalid value: "::1": may not be in the loopback range (127.0.0.0/8, ::1/128)']
    assert [str(e) for e in validate_non_special_ip("224.0.0.5", "x")] == [
        'x: Invalid value: "224.0.0.5": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)']
    assert validate_non_special_ip("192.0.2.1", "x") == []


def test_object_meta_on_create() -> None:
    errs = validate_object_meta({"metadata": {"generateName": "Web-", "labels": {"a": "b"}}}, True,
                                name_is_dns1035_label)
    assert [e.field for e in errs] == ["metadata.generateName", "metadata.name", "metadata.namespace"]
    assert str(errs[1]) == "metadata.name: Required value: name or generateName is required"
    assert str(errs[2]) == "metadata.namespace: Required value"
    errs = validate_object_meta({"metadata": {"name": "n", "namespace": "x"}}, False, name_is_dns_subdomain)
    assert [str(e) for e in errs] == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_annotations_size_limit() -> None:
    errs = validate_object_meta({"metadata": {"name": "n", "namespace": "d", "annotations": {"k": "v" * 262144}}},
                                True, name_is_dns_subdomain)
    assert [str(e) for e in errs] == ["metadata.annotations: Too long: must have at most 262144 bytes"]


def test_object_meta_update_immutables() -> None:
    old = {"metadata": {"name": "a", "namespace": "d", "uid": "1", "resourceVersion": "3"}}
    new = {"metadata": {"name": "a", "namespace": "d", "uid": "2", "resourceVersion": "3"}}
    assert [str(e) for e in validate_object_meta_update(new, old)] == [
        'metadata.uid: Invalid value: "2": field is immutable']


def test_go_quoting() -> None:
    assert go_quote('a"b\\c\n\x01é') == '"a\\"b\\\\c\\n\\x01é"'
    assert go_repr(["10.96.0.1"]) == '[]string{"10.96.0.1"}'
