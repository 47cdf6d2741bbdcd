"""Placement expressions: CEL over one item's record, compiled once, evaluated per item.

CEL (the Common Expression Language, https://cel.dev) is what Kubernetes itself uses for CRD
validation rules and admission policies. It is evaluated here through the
``common-expression-language`` package (Python bindings of the cel-rust interpreter): about
13 µs an evaluation on this machine, against ~730 µs for the pure-Python ``cel-python``, which
also pulls python-dateutil 4 (botocore forbids it).

An expression sees one item (`activation`):

=============  ================================  =========================================
variable       CEL type                          from the item record (core/catalog/)
=============  ================================  =========================================
``item``       string                            the id
``categories`` list(string)                      ``categories``
``labels``     map(string, string)               ``labels``
``attributes`` map(string, double | timestamp)   ``attributes`` (numbers; RFC 3339 dates)
``title``      string                            ``title`` ("" when none)
``now``        timestamp                         the evaluation time (30-second steps)
=============  ================================  =========================================

An item with no record is seen with empty lists and maps. Compilation refuses a syntax error,
a function outside CEL's standard set, and a variable the table does not have (each named).
Evaluation of one item can still fail (a missing label: ``labels.studio`` where the item has
none; a type mismatch): `Expression.test` then answers None, and the caller counts it and
treats the item as not matching (a filter excludes it, a boost does not apply). Guard with
``has(labels.studio) && ...`` or ``'studio' in labels && ...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cel

from ..catalog.records import ItemRecord

__all__ = ["MAX_EXPRESSION_CHARS", "NOW_STEP_S", "VARIABLES", "Expression", "ExpressionError",
           "activation", "compile_expression"]

#: An expression is at most this many characters.
MAX_EXPRESSION_CHARS = 2000
#: ``now`` moves in steps of this many seconds, so expressions that read it are re-evaluated
#: (for every item) at most this often.
NOW_STEP_S = 30.0
VARIABLES = ("item", "categories", "labels", "attributes", "title", "now")
#: CEL's standard functions and macros (cel-spec, "Standard Definitions"); operators are the
#: references that start with ``_``, ``@`` or ``!``.
_FUNCTIONS = frozenset({
    "size", "int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration", "dyn",
    "type", "matches", "startsWith", "endsWith", "contains", "has", "all", "exists",
    "exists_one", "map", "filter", "getFullYear", "getMonth", "getDayOfMonth", "getDayOfWeek",
    "getDayOfYear", "getDate", "getHours", "getMinutes", "getSeconds", "getMilliseconds"})
_UNDEFINED = re.compile(r"Undefined variable or function: '([^']*)'")


class ExpressionError(ValueError):
    """An expression that cannot be used: its message says why (shown after the field)."""


@dataclass(frozen=True, eq=False)
class Expression:
    """A compiled CEL expression; ``source`` is its text, ``uses_now`` whether it reads
    ``now`` (then it is re-evaluated every `NOW_STEP_S`, not only when a record changes),
    ``variables`` which item variables it reads (the memo key of ``masks.py``)."""

    source: str
    program: Any = field(repr=False)
    uses_now: bool = False
    #: The item variables it reads (`VARIABLES` but ``now``), in a fixed order.
    variables: tuple[str, ...] = VARIABLES[:-1]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def test(self, context: Mapping[str, Any]) -> bool | None:
        """The expression's truth for one item's `activation`; None when it fails or is not
        a boolean (the caller counts it)."""
        try:
            value = self.program.execute(context)
        except Exception:  # noqa: BLE001 - cel raises KeyError, TypeError, RuntimeError...
            return None
        return value if isinstance(value, bool) else None


def activation(record: ItemRecord | None, item: str, now: datetime) -> dict[str, Any]:
    """The variables an expression sees for ``item`` (``record`` None: no record)."""
    if record is None:
        return {"item": item, "categories": [], "labels": {}, "attributes": {}, "title": "",
                "now": now}
    return {"item": item, "categories": list(record.categories), "labels": dict(record.labels),
            "attributes": dict(record.attributes), "title": record.title or "", "now": now}


def _probe() -> dict[str, Any]:
    return activation(None, "probe", datetime.now(UTC))


def compile_expression(raw: object, what: str = "expression") -> Expression:
    """Compile ``raw`` (a CEL string). Raises `ExpressionError`: not a non-empty string, too
    long, a syntax error (with CEL's position), an unknown function or variable."""
    if not isinstance(raw, str) or not raw.strip():
        raise ExpressionError(f"must be a CEL expression (a non-empty string), got {raw!r:.60}")
    if len(raw) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"is {len(raw)} characters; the limit is {MAX_EXPRESSION_CHARS}")
    try:
        program = cel.compile(raw)
    except (ValueError, RuntimeError) as e:
        first = str(e).replace("\n", " ")
        raise ExpressionError(f"does not compile as CEL: {first:.300}") from None
    refs = program.references()
    functions = [f for f in refs.get("functions", ()) if f[:1] not in ("_", "@", "!")]
    unknown = sorted(set(functions) - _FUNCTIONS)
    if unknown:
        raise ExpressionError(f"calls {', '.join(unknown)}, not a CEL standard function")
    variables = set(refs.get("variables", ()))
    if variables - set(VARIABLES):  # a comprehension's own variable, or a typo: try it
        try:
            program.execute(_probe())
        except RuntimeError as e:
            m = _UNDEFINED.search(str(e))
            if m:
                raise ExpressionError(f"names {m.group(1)!r}, not a variable of placements "
                                      f"(they are {', '.join(VARIABLES)})") from None
        except Exception:  # noqa: BLE001, S110 - data-dependent failures are per item
            pass
    return Expression(raw, program, "now" in variables,
                      tuple(v for v in VARIABLES[:-1] if v in variables))
