"""docs/configuration.md's tables, written from the settings table (``render.py`` puts them
between the file's markers; the prose around them is kept by hand)."""

from __future__ import annotations

from streamrec.core.scoring.blend import MAX_SCORER_WEIGHT

from .experiments import Experiments
from .kinds import Bool, Enum, Kind, Num, Str
from .placements import Placements
from .rows import SECTIONS, SETTINGS
from .structured import ScorerWeights
from .table import SAME, Setting

__all__ = ["MARKERS", "configuration_tables", "operator_tables", "rule_text"]

MARKERS = ("<!-- BEGIN GENERATED: make settings -->", "<!-- END GENERATED: make settings -->")


def rule_text(kind: Kind) -> str:
    """A kind's rule as the docs write it: ``[1, 1024]``, ``one of a, b``, ``on/off``."""
    if isinstance(kind, Num):
        return f"`{kind.domain.text()}`".replace("`[0, inf]`", "`>= 0`").replace(
            "`[1, inf]`", "`>= 1`")
    if isinstance(kind, Enum):
        return "one of " + ", ".join(f"`{c}`" for c in kind.choices)
    if isinstance(kind, Bool):
        return "on/off"
    if isinstance(kind, Str) and kind.rule:
        return kind.rule.removeprefix("must be ").removeprefix("must ")
    if isinstance(kind, Experiments):
        return "list of experiments (docs/experiments.md)"
    if isinstance(kind, Placements):
        return "list of placements, or a watched file (docs/placements.md)"
    if isinstance(kind, ScorerWeights):
        return f"map: registered scorer → `[0, {MAX_SCORER_WEIGHT:g}]`, one > 0"
    return ""


def _code(text: str | None) -> str:
    return f"`{text}`" if text else "—"


def _default(row: Setting) -> str:
    out = f"`{row.show_default()}`"
    if "run" in row.services and row.run_default is not SAME:
        out += f" (run: `{row.show_default(row.run_default)}`)"
    return out


def _cr(row: Setting) -> str:
    if row.cr is None:
        return "—"
    out = f"`spec.{row.cr}`"
    if row.cr_kind != row.kind:
        out += f" ({rule_text(row.kinds[1])})"
    return out


def configuration_tables() -> str:
    """Two Markdown tables: the services' settings, then those only a RecommenderService has."""
    lines = [
        "| setting | env var | flag | default | rule | CR field | Helm value | used by "
        "| description |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in SETTINGS:
        if not row.services:
            continue
        lines.append(
            f"| `{row.name}` | {_code(row.env_name)} | {_code(row.flag_name)} | {_default(row)} "
            f"| {rule_text(row.kind)} | {_cr(row)} | {_code(row.helm)} "
            f"| {', '.join(row.services)} | {row.doc} |")
    lines += [
        "",
        "Fields only a `RecommenderService` has (the operator reads them; no service does):",
        "",
        "| CR field | default | rule | Helm value | description |",
        "|---|---|---|---|---|",
    ]
    for row in SETTINGS:
        if row.services or row.cr is None:
            continue
        lines.append(f"| `spec.{row.cr}` | {_cr_default(row)} | {rule_text(row.kinds[1])} "
                     f"| {_code(row.helm)} | {row.doc} |")
    return "\n".join(lines) + "\n"


def _cr_default(row: Setting) -> str:
    default = row.cr_default_value
    if row.required:
        return "required"
    if isinstance(default, dict):
        return ", ".join(f"{k} `{_flow(v)}`" for k, v in default.items())
    if default is None:
        return f"unset ({row.default_text})" if row.default_text else "unset"
    return f"`{row.kinds[1].show(default)}`"


def _flow(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def operator_tables() -> str:
    """docs/operator.md: one table per section of ``spec``."""
    out: list[str] = ["### `spec`", "", "Fields of `spec` itself.", "",
                      "| field | rule | default | env var | description |", "|---|---|---|---|---|"]
    for row in SETTINGS:
        if row.cr is not None and row.cr_section == "":
            out.append(f"| `{row.cr_key}` | {rule_text(row.kinds[1]) or 'string'} "
                       f"| {_cr_default(row)} | {_code(row.env_name)} | {row.doc} |")
    out.append("")
    for section in SECTIONS:
        rows = [r for r in SETTINGS if r.cr is not None and r.cr_section == section.path]
        required = " (required)" if section.required else ""
        out += [f"### `spec.{section.path}`{required}", "", section.doc, "",
                "| field | rule | default | env var | description |", "|---|---|---|---|---|"]
        for row in rows:
            out.append(f"| `{row.cr_key}` | {rule_text(row.kinds[1]) or 'string'} "
                       f"| {_cr_default(row)} | {_code(row.env_name)} | {row.doc} |")
        out.append("")
    return "\n".join(out)
