"""The typed field declarations generated into Python modules: ``Config``'s fields
(``streamrec/config.py``) and those of the operator's spec types (``operator/spec.py``).

A typed dataclass keeps mypy's view of every setting; its field lines are written from the
rows between ``# BEGIN GENERATED: make settings (<label>)`` and ``# END GENERATED: ...``
markers, so a new setting is still one row (``make settings`` adds its field).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .experiments import Experiments
from .kinds import Bool, Kind, Num
from .placements import Placements
from .rows import SECTIONS, SETTINGS
from .structured import Feedback, Listed, Opaque, ScorerWeights

__all__ = ["BEGIN", "END", "code_blocks", "py_type", "replace_blocks"]

BEGIN, END = "BEGIN GENERATED: make settings", "END GENERATED: make settings"


def py_type(kind: Kind, optional: bool) -> str:
    """The annotation of a value of ``kind`` (``| None`` when it may be unset)."""
    if isinstance(kind, Num):
        text = "int" if kind.domain.integer else "float"
    elif isinstance(kind, Bool):
        text = "bool"
    elif isinstance(kind, (Feedback, ScorerWeights)):
        text = "tuple[tuple[str, float], ...]"
    elif isinstance(kind, Opaque):
        text = "Resources"
    elif isinstance(kind, Listed):
        text = "tuple[str, ...]"
    elif isinstance(kind, Experiments):
        text = "tuple[Experiment, ...]"
    elif isinstance(kind, Placements):
        text = "PlacementSource"
    else:
        text = "str"
    return f"{text} | None" if optional else text


def _config_block() -> str:
    lines = []
    for row in SETTINGS:
        if row.config:
            lines.append(f"{row.name}: {py_type(row.kind, row.default is None)} "
                         f"= _D[\"{row.name}\"]")
    return "\n".join(lines)


def _section_block(section: str) -> str:
    rows = [r for r in SETTINGS if r.cr is not None and r.cr_section == section]
    required = [r for r in rows if r.required]  # no default: they come first in a dataclass
    lines = [f"{r.attr}: {py_type(r.kinds[1], False)}" for r in required]
    for row in rows:
        if row not in required:
            optional = row.cr_default_value is None
            lines.append(f"{row.attr}: {py_type(row.kinds[1], optional)} = _d(\"{row.name}\")")
    return "\n".join(lines)


def code_blocks() -> dict[str, dict[str, str]]:
    """file (from the repository root) -> label -> the block's lines (unindented)."""
    return {
        "services/streamrec/config.py": {"Config": _config_block()},
        "services/streamrec/operator/spec.py": {
            "section spec": _section_block(""),
            **{f"section {s.path}": _section_block(s.path) for s in SECTIONS}},
    }


def replace_blocks(text: str, blocks: Mapping[str, str], comment: tuple[str, str] = ("# ", ""),
                   ) -> str:
    """``text`` with each labelled block replaced (indented as its BEGIN marker is); the
    markers are comments (``comment``: what opens and closes one, ``#`` for Python and YAML).
    ``ValueError`` naming a label whose markers are missing."""
    start, stop = comment
    for label, body in blocks.items():
        begin, end = (f"{start}{mark} ({label}){stop}" for mark in (BEGIN, END))
        pattern = re.compile(rf"^(?P<indent>[ \t]*){re.escape(begin)}\n.*?"
                             rf"^[ \t]*{re.escape(end)}\n", re.M | re.S)
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"no '{begin}' ... '{end}' markers")
        indent = match.group("indent")
        lines = "".join(f"{indent}{line}\n" if line else "\n" for line in body.splitlines())
        new = f"{indent}{begin}\n{lines}{indent}{end}\n"
        text = text[:match.start()] + new + text[match.end():]
    return text
