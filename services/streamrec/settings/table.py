"""One setting = one row: its name, kind, default, doors (env var, flag, CR path, Helm value),
description and the services that take it.

Everything else about a setting is derived from its row (``streamrec.settings`` says what):
the env var is ``STREAMREC_<NAME>``, the flag ``--name-with-dashes``, the CR's attribute in the
operator's spec types is the row's ``name``. The rows themselves are in ``rows.py``; the CR
sections (objects of ``spec``) in :data:`SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .kinds import Kind

__all__ = ["SAME", "SERVICES", "Section", "Setting"]

#: The commands that take settings (``streamrec <command>``).
SERVICES = ("trainer", "serve", "run", "operator")


class _Same:
    def __repr__(self) -> str:
        return "SAME"


#: ``cr_default``: the CR's default is the row's ``default``.
SAME: Any = _Same()


@dataclass(frozen=True)
class Setting:
    """One setting.

    ``services`` are the commands that read it (flag and env var, or env only where ``flag``
    is False); none for a setting only the operator's CR has. ``config``: a field of
    ``streamrec.config.Config``. ``cr`` is the path under ``spec`` (``model.factors``), read
    with ``cr_kind`` (default: ``kind``) and written to the CRD with ``cr_default``; ``cr_env``:
    the operator passes it to the containers as the env var. ``helm`` is the value's path in
    the chart (``example.model.factors``), ``helm_example`` its value in values.yaml where that
    is not the default (the example's own Kafka and MinIO). ``run_default`` is ``streamrec
    run``'s own default. ``default_text`` is how docs write a default of None.
    """

    name: str
    kind: Kind
    default: Any
    doc: str
    services: tuple[str, ...] = ()
    flag: bool = True
    env: bool = True
    config: bool = True
    secret: bool = False
    cr: str | None = None
    cr_kind: Kind | None = None
    cr_default: Any = SAME
    cr_env: bool = True
    required: bool = False
    helm: str | None = None
    helm_kind: Kind | None = None
    helm_example: Any = SAME
    run_default: Any = SAME
    default_text: str | None = None
    #: Set: an env var that is present but blank is refused with this message (an empty
    #: secret that would silently switch a guard off), not taken as unset.
    refuse_blank: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.services) - set(SERVICES)
        assert not unknown, f"{self.name}: unknown services {unknown}"
        if self.cr_kind is None:
            object.__setattr__(self, "cr_kind", self.kind)
        if self.helm_kind is None:
            object.__setattr__(self, "helm_kind", self.cr_kind)

    @property
    def env_name(self) -> str | None:
        return f"STREAMREC_{self.name.upper()}" if self.env else None

    @property
    def flag_name(self) -> str | None:
        return "--" + self.name.replace("_", "-") if self.flag and not self.secret else None

    @property
    def cr_section(self) -> str:
        """``model`` for ``model.factors``; ``serving.ingress`` for ``serving.ingress.host``."""
        assert self.cr is not None
        return self.cr.rpartition(".")[0]

    @property
    def cr_key(self) -> str:
        assert self.cr is not None
        return self.cr.rpartition(".")[2]

    @property
    def attr(self) -> str:
        """The attribute in the operator's spec type of its section: the name, less the
        section's own name as a prefix (``kafka_security_protocol`` in ``kafka``:
        ``security_protocol``; ``ingress_enabled`` in ``serving.ingress``: ``enabled``)."""
        prefix = self.cr_section.rpartition(".")[2] + "_"
        return self.name[len(prefix):] if self.name.startswith(prefix) else self.name

    @property
    def cr_default_value(self) -> Any:
        return self.default if self.cr_default is SAME else self.cr_default

    @property
    def kinds(self) -> tuple[Kind, Kind, Kind]:
        """(kind, cr_kind, helm_kind), typed."""
        assert self.cr_kind is not None and self.helm_kind is not None
        return self.kind, self.cr_kind, self.helm_kind

    def default_for(self, service: str) -> Any:
        return self.run_default if service == "run" and self.run_default is not SAME \
            else self.default

    def show_default(self, value: Any = SAME) -> str:
        """A default as ``--help`` and docs/configuration.md write it."""
        value = self.default if value is SAME else value
        if (value is None or value == ()) and self.default_text:
            return self.default_text
        return self.kind.show(value)


@dataclass(frozen=True)
class Section:
    """An object of the CR's ``spec``: required in ``spec`` (or of its parent), its
    description, CEL rules (``x-kubernetes-validations``) and whether it defaults to ``{}``."""

    path: str
    doc: str = ""
    required: bool = False
    default_empty: bool = True
    validations: tuple[Mapping[str, str], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def by_name(rows: tuple[Setting, ...]) -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for row in rows:
        assert row.name not in out, f"setting {row.name} twice"
        out[row.name] = row
    return out


def in_section(rows: tuple[Setting, ...], section: str) -> Iterator[Setting]:
    return (r for r in rows if r.cr is not None and r.cr_section == section)
