"""resource.Quantity's canonical string (`1024Mi` -> `1Gi`, `1000M` -> `1G`, `0.5` -> `500m`).

The API server re-encodes every quantity it decodes, so the capacity a Table shows is always canonical
whatever the user typed. Canonical form keeps the family of the suffix the value was written with:
binary (Ki..Ei), decimal SI (n..E) or a decimal exponent (e3).
"""

from __future__ import annotations

import re
from decimal import ROUND_UP, Decimal, InvalidOperation

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = {exp // 10: suffix for suffix, exp in _BINARY.items()} | {0: ""}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))((?:[eE][+-]?\d+)|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")
_NANO = Decimal("1e-9")


def canonical_quantity(value: object) -> str:
    """The canonical text of a quantity; input that does not parse is returned unchanged (as text)."""
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m:
        return text
    number, suffix = m.group(1), m.group(2)
    try:
        amount = Decimal(number)
    except InvalidOperation:
        return text
    if suffix in _BINARY:
        amount *= Decimal(2) ** _BINARY[suffix]
        family = "binary"
    elif suffix[:1] in ("e", "E"):
        amount = amount.scaleb(int(suffix[1:]))
        family = "exponent"
    else:
        amount = amount.scaleb(_DECIMAL[suffix])
        family = "decimal"
    # Quantities carry at most nano precision; finer values round away from zero.
    amount = amount.quantize(_NANO, rounding=ROUND_UP) if amount.as_tuple().exponent < -9 else amount
    if amount == 0:
        return "0"
    if family == "binary":
        if -1024 < amount < 1024 or amount != amount.to_integral_value():
            family = "decimal"
        else:
            return _base1024(int(amount))
    mantissa, exponent = _base10(amount)
    if family == "exponent":
        return str(mantissa) if exponent == 0 else f"{mantissa}e{exponent}"
    return f"{mantissa}{_DECIMAL_SUFFIX.get(exponent, '')}"


def _base1024(value: int) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    power = 0
    while value % 1024 == 0 and power < 6:
        value //= 1024
        power += 1
    return f"{sign}{value}{_BINARY_SUFFIX[power]}"


def _base10(amount: Decimal) -> tuple[int, int]:
    """Integer mantissa and an exponent that is a multiple of 3, mantissa as short as that allows."""
    sign, digits, exponent = amount.normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)) or "0")
    shift = exponent % 3  # Python's modulo is never negative: lower the exponent to the multiple of 3 below
    mantissa *= 10**shift
    exponent -= shift
    return (-mantissa if sign else mantissa), exponent
