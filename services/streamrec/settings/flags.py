"""Command-line flags from the settings table: ``--name-with-dashes`` for each row a command
takes, with ``--help`` naming the env var, the default *this command* uses and the domain.

Flags of ``Config`` fields default to None and stay text, so ``Config.load`` applies the
precedence (flag > env > default) and names the flag in its error; flags of other settings
(the operator's) are parsed and checked by argparse itself. Either way a bad value exits 2
naming the flag. Secrets have no flag: a flag shows in ``ps``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streamrec.core.domains import Range

from . import BY_NAME, service_rows
from .kinds import Bool, Enum, Num
from .table import Setting

__all__ = ["add_service_arguments", "add_setting_arguments", "grace_seconds", "help_text",
           "in_range"]


def help_text(row: Setting, default: Any) -> str:
    parts = [f"env {row.env_name}"] if row.env_name else []
    parts.append(f"default {row.show_default(default)}")
    kind = row.kind
    if isinstance(kind, Num):
        parts.append(f"range {kind.domain.text()}")
    elif isinstance(kind, Enum):
        parts.append(f"one of {', '.join(kind.choices)}")
    return "; ".join(parts)


def _checked(row: Setting) -> Callable[[str], Any]:
    """An argparse ``type``: parse and check by the row's kind (``ArgumentTypeError``: exit 2
    naming the flag)."""

    def parse(raw: str) -> Any:
        try:
            value = row.kind.parse(raw)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"cannot parse {raw!r}: {e}") from None
        problem = row.kind.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{problem}, got {raw!r}")
        return value

    return parse


def add_setting_arguments(parser: argparse.ArgumentParser, rows: Iterable[Setting],
                          defaults: Mapping[str, object] | None = None) -> None:
    """Add the flag of each row that has one. ``defaults`` overrides what ``--help`` shows
    as the default (``Config`` fields) or the default itself (other settings)."""
    for row in rows:
        flag = row.flag_name
        if flag is None:
            continue
        default = (defaults or {}).get(row.name, row.default)
        helptext = help_text(row, default)
        if isinstance(row.kind, Bool):  # --x / --no-x: a default of on must be switchable off
            parser.add_argument(flag, dest=row.name, action=argparse.BooleanOptionalAction,
                                default=None if row.config else default, help=helptext)
        elif row.config:
            parser.add_argument(flag, dest=row.name, default=None, metavar=row.name.upper(),
                                help=helptext)
        else:
            parser.add_argument(flag, dest=row.name, default=default, type=_checked(row),
                                metavar=row.name.upper(), help=helptext)


def add_service_arguments(parser: argparse.ArgumentParser, service: str,
                          defaults: Mapping[str, object] | None = None) -> None:
    """Every flag of ``streamrec <service>``: the rows whose ``services`` name it."""
    add_setting_arguments(parser, service_rows(service), defaults)


def add_config_arguments(parser: argparse.ArgumentParser, names: Iterable[str],
                         defaults: Mapping[str, object] | None = None) -> None:
    """The flags of the named settings (for tools and tests that take a few)."""
    add_setting_arguments(parser, (BY_NAME[n] for n in names), defaults)


def in_range(domain: Range) -> Callable[[str], Any]:
    """An argparse ``type`` for a flag outside the table with this domain (the evaluation
    tool's): a bad value makes argparse exit 2 naming the flag."""
    kind = Num(domain)

    def parse(raw: str) -> int | float:
        try:
            value: int | float = kind.parse(raw)
        except ValueError:
            value = math.nan
        problem = kind.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{problem}, got {raw!r}")
        return value

    return parse


#: ``--grace`` (trainer, run): seconds a running fit may finish on shutdown.
grace_seconds = in_range(Range(0.0, 3600.0))
