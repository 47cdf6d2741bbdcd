"""Kubernetes resource quantities (``500m``, ``1Gi``, ``2``, ``1e3``) as exact decimals.

We need their values twice: to reject a spec whose limit is below its request before the API
server does (with a clearer message), and to see that ``0.5`` in a spec and the ``500m`` the
API server stores are the same value, so the operator does not re-patch a child forever.
"""

from __future__ import annotations

import re
from decimal import Decimal

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)

_MULTIPLIERS: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(value: object) -> Decimal:
    """Return the exact value of a quantity; raise ValueError if it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"must be a Kubernetes quantity such as 500m or 1Gi (got {value!r})")
    suffix = match["suffix"] or ""
    if suffix not in _MULTIPLIERS:  # an exponent such as e3 ("E" alone is exa)
        return Decimal(match["number"]) * Decimal(10) ** int(suffix[1:])
    return Decimal(match["number"]) * _MULTIPLIERS[suffix]


def same_quantity(a: object, b: object) -> bool:
    """True when both are quantities with the same value (``0.5`` and ``500m``)."""
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        return False
