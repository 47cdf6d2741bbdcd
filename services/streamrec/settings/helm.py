"""The chart's example RecommenderService, generated from the rows whose ``helm`` value is
``example.<CR path>``: its commented values (``values.yaml``) and the template that turns
them into the CR's ``spec`` (``templates/example.yaml``). Both sit between markers; the rest of
either file is kept by hand.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import yaml

from .experiments import Experiments
from .kinds import Bool, Enum, Num
from .placements import Placements
from .rows import SECTIONS, SETTINGS
from .structured import Feedback, Listed, Opaque, ScorerWeights
from .table import SAME, Section, Setting

__all__ = ["example_rows", "template_block", "values_block"]

_PREFIX = "example."


def example_rows(section: str) -> list[Setting]:
    rows = [r for r in SETTINGS if r.helm and r.helm.startswith(_PREFIX)
            and r.cr is not None and r.cr_section == section]
    for row in rows:
        assert row.helm == _PREFIX + str(row.cr), f"{row.name}: Helm value must mirror the CR"
    return rows


def _sections() -> Iterator[tuple[Section, int]]:
    """Sections with example values, each followed by its sub-sections, with their depth."""
    def walk(parent: str, depth: int) -> Iterator[tuple[Section, int]]:
        for s in SECTIONS:
            if s.path.rpartition(".")[0] == parent and _has_rows(s.path):
                yield s, depth
                yield from walk(s.path, depth + 1)
    return walk("", 0)


def _has_rows(section: str) -> bool:
    return bool(example_rows(section)) or any(
        s.path.startswith(section + ".") and example_rows(s.path) for s in SECTIONS)


def _scalar(value: Any) -> str:
    if value is None:
        return '""'
    text: str = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000)
    return text.strip().removesuffix("...").strip()


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, 96 - len(indent))]


def values_block() -> str:
    """The example's values, one commented key per row (``values.yaml``, under ``example:``)."""
    lines: list[str] = []
    for section, depth in _sections():
        indent = "  " * depth
        lines += _comment(section.doc, indent) + [f"{indent}{section.path.rpartition('.')[2]}:"]
        inner = indent + "  "
        for row in example_rows(section.path):
            lines += _value_lines(row, inner)
    for row in example_rows(""):  # fields of spec itself (experiments)
        lines += _value_lines(row, "")
    return "\n".join(lines)


def _value_lines(row: Setting, inner: str) -> list[str]:
    """One row's commented value in values.yaml."""
    value = row.cr_default_value if row.helm_example is SAME else row.helm_example
    env = f" ({row.env_name})" if row.env_name and row.cr_env else ""
    unset = (f" Empty: {row.default_text}." if row.cr_default_value is None
             and row.default_text and not row.required else "")
    lines = _comment(row.doc + unset + env, inner)
    if isinstance(row.kinds[1], Opaque) and isinstance(value, dict):
        lines.append(f"{inner}{row.cr_key}:")
        lines += [f"{inner}  {k}: {_scalar(v)}" for k, v in value.items()]
    elif isinstance(row.kinds[1], (Feedback, ScorerWeights)):
        lines.append(f"{inner}{row.cr_key}: {{}}")
    elif isinstance(row.kinds[1], (Listed, Experiments)):
        lines.append(f"{inner}{row.cr_key}: {list(value or ())!r}")
    elif isinstance(row.kinds[1], Placements):
        lines.append(f"{inner}{row.cr_key}: []")
    else:
        lines.append(f"{inner}{row.cr_key}: {_scalar(value)}")
    return lines


def _expr(row: Setting, ref: str) -> str:
    """How the template writes a value (``int64``: large integers would print as 1e+06)."""
    kind = row.kinds[1]
    if isinstance(kind, Num):
        return f"int64 {ref}" if kind.domain.integer else ref
    if isinstance(kind, (Bool, Enum)):
        return ref
    return f"{ref} | quote"


def template_block() -> str:
    """The CR's ``spec`` sections from the example values (``templates/example.yaml``; its
    markers sit at column 0, the sections under ``spec:``)."""
    lines: list[str] = []
    for section, depth in _sections():
        indent = "  " * (depth + 1)
        lines.append(f"{indent}{section.path.rpartition('.')[2]}:")
        inner = indent + "  "
        for row in example_rows(section.path):
            lines += _template_lines(row, inner)
    for row in example_rows(""):  # fields of spec itself (experiments)
        lines += _template_lines(row, "  ")
    return "\n".join(lines)


def _template_lines(row: Setting, inner: str) -> list[str]:
    """How the template writes one row's value into the CR."""
    ref = f"$ex.{row.cr}"
    nested = isinstance(row.kinds[1], (Opaque, Feedback, ScorerWeights, Listed, Experiments,
                                       Placements))
    optional = row.cr_default_value is None and not row.required
    if nested:
        body = [f"{inner}{row.cr_key}:",
                f"{inner}  {{{{- toYaml {'.' if optional else ref} "
                f"| nindent {len(inner) + 2} }}}}"]
    elif row.required:
        body = [f'{inner}{row.cr_key}: {{{{ required "{row.helm} is required" '
                f"{ref} | quote }}}}"]
    else:
        body = [f"{inner}{row.cr_key}: {{{{ {_expr(row, '.' if optional else ref)} }}}}"]
    if optional:
        body = [f"{inner}{{{{- with {ref} }}}}", *body, f"{inner}{{{{- end }}}}"]
    return body
