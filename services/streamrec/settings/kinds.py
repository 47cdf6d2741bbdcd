"""Value kinds of the settings table: one rule per kind, read from text or from a CR value.

A kind knows, for one setting, everything that does not depend on where the value comes from:

- ``parse(text)`` turns an env var or flag into a value (``ValueError`` when it is not one);
- ``problem(value)`` is *the* rule: ``None`` for a good value, else ``"must be ..."``; Config,
  argparse and the operator's CR parser all ask it, so a bound is checked the same way everywhere;
- ``from_cr(value)`` checks a JSON value of a custom resource (``BadValue`` naming a sub-path
  when the kind is nested) and returns it as the service will use it;
- ``env(value)`` writes a value as the services read it back from ``STREAMREC_*``;
- ``schema()`` is its OpenAPI v3 / JSON-schema fragment (the CRD and Helm's values schema);
- ``show(value)`` is how docs and ``--help`` write a default.

Pure: no I/O. The numeric domains are ``core.domains.Range``. Scalar kinds are here; lists,
tables and structured values in ``structured.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from streamrec.core.domains import Range

__all__ = ["BadValue", "Bool", "Enum", "Kind", "Num", "Str", "parse_bool", "parse_float",
           "parse_int"]


class BadValue(ValueError):
    """A CR value that breaks its kind's rule; ``subpath`` names the part inside it ("" for
    the value itself, ``limits.cpu`` inside a resources object)."""

    def __init__(self, message: str, subpath: str = "") -> None:
        super().__init__(message)
        self.message, self.subpath = message, subpath


def parse_bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def parse_int(raw: str) -> int:
    """A plain ASCII decimal integer: no ``1_000``, no non-ASCII digits, no ``1e3``."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        raise ValueError(f"not an integer: {raw!r}")
    return int(text)


def parse_float(raw: str) -> float:
    """A plain ASCII decimal or exponent number (``float`` would also take ``1_0``)."""
    text = raw.strip()
    if not text.isascii() or "_" in text or len(text) > 40:
        raise ValueError(f"not a number: {raw!r}")
    return float(text)


class Kind:
    """The base: a string as given, any value accepted. Subclasses narrow it."""

    #: The parse error is the converter's own message (else "cannot parse '...'").
    says_why = False

    def parse(self, raw: str) -> Any:
        return raw

    def problem(self, value: Any) -> str | None:
        return None

    def from_cr(self, value: object) -> Any:
        message = self.problem(value)
        if message is not None:
            raise BadValue(message)
        return value

    def env(self, value: Any) -> str:
        return str(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def show(self, value: Any) -> str:
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "on" if value else "off"
        return str(value)


@dataclass(frozen=True)
class Num(Kind):
    """An integer or a number in ``domain``; ``high`` may be ``inf`` (no upper bound)."""

    domain: Range

    def parse(self, raw: str) -> int | float:
        return parse_int(raw) if self.domain.integer else parse_float(raw)

    def _bounds(self) -> str:
        d = self.domain
        if d.high == float("inf"):
            return f"{'>' if d.open_low else '>='} {d.low:g}"
        return f"in {d.text()}"

    def problem(self, value: Any) -> str | None:
        types = int if self.domain.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, types) or not self.domain.contains(
                value):
            kind = "an integer" if self.domain.integer else "a number"
            return f"must be {kind} {self._bounds()}"
        return None

    def from_cr(self, value: object) -> int | float:
        super().from_cr(value)
        assert isinstance(value, (int, float))
        return value if self.domain.integer else float(value)

    def env(self, value: Any) -> str:
        return str(value) if self.domain.integer else repr(float(value))

    def schema(self) -> dict[str, Any]:
        d = self.domain
        out: dict[str, Any] = {"type": "integer" if d.integer else "number"}
        out["minimum"] = int(d.low) if d.integer else d.low
        if d.open_low:
            out["exclusiveMinimum"] = True
        if d.high != float("inf"):
            out["maximum"] = int(d.high) if d.integer else d.high
        return out


class Bool(Kind):
    says_why = True

    def parse(self, raw: str) -> bool:
        return parse_bool(raw)

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"

    def env(self, value: Any) -> str:
        return "true" if value else "false"

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Str(Kind):
    """A string: non-empty unless ``empty_ok``; ``pattern`` (anchored, as the CRD writes it)
    and ``max_length`` with ``rule`` as the message when it does not match."""

    empty_ok: bool = False
    pattern: str | None = None
    min_length: int = 1
    max_length: int | None = None
    rule: str = ""

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a string" if self.empty_ok else "must be a non-empty string"
        if not value:
            return None if self.empty_ok else "must be a non-empty string"
        if (len(value) < self.min_length
                or (self.max_length is not None and len(value) > self.max_length)
                # OpenAPI patterns are unanchored searches (the CRD's are anchored with ^ $).
                or (self.pattern is not None and not re.search(self.pattern, value))):
            return self.rule or f"must match {self.pattern}"
        return None

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if not self.empty_ok and self.min_length > 0:
            out["minLength"] = self.min_length
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out


@dataclass(frozen=True)
class Enum(Kind):
    choices: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        return None if value in self.choices else f"must be one of {', '.join(self.choices)}"

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}
