"""docs/configuration.md's tables, written from the settings table (``render.py`` puts them
between the file's markers; the prose around them is kept by hand)."""

from __future__ import annotations

from .kinds import Bool, Enum, Kind, Num, Str
from .rows import SETTINGS
from .table import SAME, Setting

__all__ = ["MARKERS", "configuration_tables", "rule_text"]

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
        return kind.rule.removeprefix("must ")
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
        default = row.cr_default_value
        shown = "required" if row.required else (
            "—" if default is None or isinstance(default, dict) else f"`{row.show_default()}`")
        lines.append(f"| `spec.{row.cr}` | {shown} | {rule_text(row.kinds[1])} "
                     f"| {_code(row.helm)} | {row.doc} |")
    return "\n".join(lines) + "\n"
