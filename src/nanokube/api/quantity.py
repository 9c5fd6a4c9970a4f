"""Resource quantities ("500m", "128Mi", "1e3") as exact numbers: parsed for the downward API, QoS class, cgroup
limits and quota, and written back for quota messages (the canonical text kubectl prints is printing/quantity.py's)."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}


def parse_quantity(text: object) -> Decimal:
    if isinstance(text, int | float):
        return Decimal(str(text))
    s = str(text).strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"):
        if s.endswith(suffix) and not (suffix == "E" and "e" in s.lower()[:-1]):
            number = s[: -len(suffix)]
            break
    else:
        suffix, number = "", s
    try:
        return Decimal(number) * _SUFFIX[suffix]
    except InvalidOperation as err:
        raise ValueError(f"invalid quantity {text!r}") from err


def ceil_div(value: Decimal, divisor: Decimal) -> int:
    return math.ceil(value / divisor)


def format_quantity(name: str, value: Decimal) -> str:
    """Counts and cores in decimal (500m), memory and storage in binary units when they divide evenly."""
    if value == value.to_integral_value():
        whole = int(value)
        if name.endswith(("memory", "storage")) and whole and whole % 1024 == 0:
            for suffix, power in (("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
                if whole % (1 << power) == 0:
                    return f"{whole >> power}{suffix}"
        return str(whole)
    milli = value * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return f"{int((value * 10**9).to_integral_value())}n"
