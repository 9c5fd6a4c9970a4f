"""IP and NodePort allocators: KEP-3070 bands, random start with wrap, fallback, errors, release, load."""

from __future__ import annotations

import ipaddress
import random

import pytest

from nanokube.apiserver.allocators import (
    AlreadyAllocatedError,
    IPAllocator,
    NotInRangeError,
    PortAllocator,
    RangeFullError,
    ip_range_offset,
    port_range_offset,
)


def test_band_sizes() -> None:
    assert ip_range_offset(2 ** 20) == 256  # /12
    assert ip_range_offset(2 ** 16) == 256  # /16
    assert ip_range_offset(256) == 16  # /24
    assert ip_range_offset(16) == 0  # /28: no split
    assert port_range_offset(2768) == 86
    assert port_range_offset(16) == 0
    assert port_range_offset(100000) == 128


def test_ip_bands_for_slash_12() -> None:
    alloc = IPAllocator("10.96.0.0/12")
    assert alloc.static_band == ("10.96.0.1", "10.96.1.0")
    assert alloc.dynamic_band == ("10.96.1.1", "10.111.255.254")


def test_ip_bands_for_slash_24_and_28() -> None:
    assert IPAllocator("10.0.0.0/24").static_band == ("10.0.0.1", "10.0.0.16")
    assert IPAllocator("10.0.0.0/24").dynamic_band == ("10.0.0.17", "10.0.0.254")
    assert IPAllocator("10.0.0.0/28").static_band is None
    assert IPAllocator("10.0.0.0/28").dynamic_band == ("10.0.0.1", "10.0.0.14")


def test_dynamic_ips_come_from_the_upper_band_and_are_spread() -> None:
    alloc = IPAllocator("10.96.0.0/12", random.Random(3))
    got = [ipaddress.ip_address(alloc.allocate_next()) for _ in range(500)]
    assert len(set(got)) == 500
    assert all(ip >= ipaddress.ip_address("10.96.1.1") for ip in got)
    assert int(max(got)) - int(min(got)) > 2 ** 18  # random start, not sequential


def test_dynamic_falls_back_to_static_band_then_full() -> None:
    alloc = IPAllocator("10.0.0.0/24", random.Random(5))
    upper = {alloc.allocate_next() for _ in range(238)}
    assert upper == {f"10.0.0.{i}" for i in range(17, 255)}
    lower = {alloc.allocate_next() for _ in range(16)}
    assert lower == {f"10.0.0.{i}" for i in range(1, 17)}
    with pytest.raises(RangeFullError, match=r"^range is full$"):
        alloc.allocate_next()
    alloc.release("10.0.0.5")
    assert alloc.allocate_next() == "10.0.0.5"


def test_requested_ips_in_either_band_and_errors() -> None:
    alloc = IPAllocator("10.96.0.0/12")
    assert alloc.allocate("10.96.0.10") == "10.96.0.10"
    assert alloc.allocate("10.100.0.1") == "10.100.0.1"
    with pytest.raises(AlreadyAllocatedError, match=r"^provided IP is already allocated$"):
        alloc.allocate("10.96.0.10")
    for outside in ("10.96.0.0", "10.111.255.255", "10.0.0.5", "fd00::1"):
        with pytest.raises(NotInRangeError) as caught:
            alloc.allocate(outside)
        assert str(caught.value) == (f"the provided IP ({outside}) is not in the valid range. "
                                     "The range of valid IPs is 10.96.0.0/12")
    assert alloc.has("10.96.0.10") and not alloc.has("10.96.0.11")


def test_leading_zero_ips_are_read_sloppily() -> None:
    alloc = IPAllocator("10.96.0.0/12")
    assert alloc.allocate("010.096.000.010") == "10.96.0.10"
    assert alloc.has("10.96.0.10")


def test_release_out_of_range_is_a_no_op_and_load_marks_used() -> None:
    alloc = IPAllocator("10.96.0.0/12")
    alloc.release("192.168.0.1")
    alloc.load(["10.96.0.1", "10.96.0.10", "192.168.0.1"])
    assert alloc.used() == ["10.96.0.1", "10.96.0.10"]
    with pytest.raises(AlreadyAllocatedError):
        alloc.allocate("10.96.0.1")


def test_port_bands_and_dynamic_preference() -> None:
    ports = PortAllocator("30000-32767", random.Random(9))
    assert ports.static_band == (30000, 30085)
    assert ports.dynamic_band == (30086, 32767)
    got = [ports.allocate_next() for _ in range(2682)]
    assert sorted(got) == list(range(30086, 32768))
    assert 30000 <= ports.allocate_next() <= 30085


def test_port_errors_release_and_reuse() -> None:
    ports = PortAllocator("30000-32767")
    assert ports.allocate(30080) == 30080
    with pytest.raises(AlreadyAllocatedError, match=r"^provided port is already allocated$"):
        ports.allocate(30080)
    with pytest.raises(NotInRangeError) as caught:
        ports.allocate(80)
    assert str(caught.value) == "provided port is not in the valid range. The range of valid ports is 30000-32767"
    ports.release(30080)
    ports.release(80)
    assert ports.allocate(30080) == 30080


def test_small_port_range_fills_up() -> None:
    ports = PortAllocator("30000-30003")
    assert sorted(ports.allocate_next() for _ in range(4)) == [30000, 30001, 30002, 30003]
    with pytest.raises(RangeFullError):
        ports.allocate_next()
    assert ports.free() == 0


def test_port_range_spellings() -> None:
    assert PortAllocator("30000+2767").range_text == "30000-32767"
    with pytest.raises(ValueError):
        PortAllocator("32767-30000")
