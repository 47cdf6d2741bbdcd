"""One source for every setting: the table (``rows.py``) and what is derived from it.

From the rows come ``streamrec.config.Config`` (parsing and validation: one rule per setting,
its kind's), each command's flags and ``--help`` (``flags.py``), the operator's CR parser and
env builder (``streamrec.operator.spec``, ``.env``), and the generated files written by
``python -m streamrec.settings.render`` (``make settings``): docs/configuration.md's tables,
both CRDs and Helm's values.schema.json. ``tests/unit/test_settings.py`` checks the committed
files equal the renderer's output.
"""

from __future__ import annotations

from .rows import SECTIONS, SETTINGS
from .table import SAME, SERVICES, Section, Setting, by_name

__all__ = ["BY_NAME", "CONFIG_ROWS", "SAME", "SECTIONS", "SERVICES", "SETTINGS", "Section",
           "Setting", "service_rows"]

#: Every setting by name.
BY_NAME: dict[str, Setting] = by_name(SETTINGS)

#: The fields of ``streamrec.config.Config``, in the table's order.
CONFIG_ROWS: tuple[Setting, ...] = tuple(r for r in SETTINGS if r.config)


def service_rows(service: str) -> tuple[Setting, ...]:
    """The settings ``streamrec <service>`` reads (flag or env var)."""
    assert service in SERVICES, service
    return tuple(r for r in SETTINGS if service in r.services)
