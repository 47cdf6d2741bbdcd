"""Typed readers for one level of a CR spec that name the offending field on error.

The CRD's OpenAPI schema already rejects most bad input at the API server; these readers are
the second line of defence (and the only one in unit tests and for cross-field rules). Every
error carries the full dotted path, e.g. ``spec.model.factors: must be an integer >= 1``, so a
user can find the field without reading operator code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamrec.operator.quantity import parse_quantity
from streamrec.settings import SETTINGS, Setting
from streamrec.settings.kinds import BadValue


class InvalidSpec(ValueError):
    """A RecommenderService spec field is missing, mistyped or out of range."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field_path = field_path
        self.message = message


class Fields:
    """Reads the fields of one mapping at ``path``; call :meth:`done` to reject unknown keys."""

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise InvalidSpec(path, f"must be an object, got {type(raw).__name__}")
        self._raw: Mapping[str, Any] = raw
        self._path = path
        self._seen: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self._path}.{key}"

    def _get(self, key: str, required: bool) -> object:
        self._seen.add(key)
        value = self._raw.get(key)
        if value is None and required:
            raise InvalidSpec(self.at(key), "is required")
        return value

    def obj(self, key: str, required: bool = False) -> Fields:
        value = self._get(key, required)
        return Fields({} if value is None else value, self.at(key))

    def raw(self, key: str) -> object:
        """The value as given (None if absent), for a reader outside this class."""
        return self._get(key, False)

    def is_empty(self) -> bool:
        return not self._raw

    def optional_string(self, key: str) -> str | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise InvalidSpec(self.at(key), "must be a non-empty string")
        return value

    def string(self, key: str, default: str) -> str:
        value = self.optional_string(key)
        return default if value is None else value

    def required_string(self, key: str) -> str:
        self._get(key, True)
        value = self.optional_string(key)
        assert value is not None  # _get raised otherwise
        return value

    def text(self, key: str) -> str | None:
        """A string where "" is meaningful (e.g. an empty notifyTopic disables notifying)."""
        value = self._get(key, False)
        if value is not None and not isinstance(value, str):
            raise InvalidSpec(self.at(key), "must be a string")
        return value

    def enum(self, key: str, choices: Sequence[str], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise InvalidSpec(self.at(key), f"must be one of {', '.join(choices)} (got {value!r})")
        return value

    def setting(self, row: Setting) -> Any:
        """The row's value at ``row.cr_key`` by its CR rule (``streamrec.settings``: the rule
        the CRD schema and the services apply); its CR default when absent."""
        value = self._get(row.cr_key, row.required)
        if value is None:
            return row.cr_default_value
        try:
            return row.kinds[1].from_cr(value)
        except BadValue as e:
            sub = e.subpath if not e.subpath or e.subpath.startswith("[") else f".{e.subpath}"
            where = self.at(row.cr_key) + sub
            raise InvalidSpec(where, f"{e.message} (got {value!r})") from None

    def section(self, section: str) -> dict[str, Any]:
        """Every row of the CR section ``section`` (e.g. ``serving.ingress``), by attribute
        (``Setting.attr``), in the
        table's order (the first bad field is the one reported)."""
        return {r.attr: self.setting(r) for r in SETTINGS
                if r.cr is not None and r.cr_section == section}

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self._get(key, False)
        if value is None:
            return default
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            raise InvalidSpec(self.at(key), f"must be an integer {bounds} (got {value!r})")
        return value

    def optional_number(self, key: str, minimum: float | None = None) -> float | None:
        value = self._get(key, False)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (minimum is not None and value < minimum)
        ):
            bound = "" if minimum is None else f" >= {minimum:g}"
            raise InvalidSpec(self.at(key), f"must be a number{bound} (got {value!r})")
        return float(value)

    def number(self, key: str, default: float, minimum: float) -> float:
        value = self.optional_number(key, minimum)
        return default if value is None else value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidSpec(self.at(key), f"must be true or false (got {value!r})")
        return value

    def quantities(self, key: str, required: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """A resource list such as ``{cpu: 500m, memory: 1Gi}``, sorted by resource name."""
        fields = self.obj(key, required=True)
        out: list[tuple[str, str]] = []
        for resource in required:
            if fields._raw.get(resource) is None:
                raise InvalidSpec(fields.at(resource), "is required")
        for resource, value in sorted(fields._raw.items()):
            fields._seen.add(resource)
            text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
            try:
                parse_quantity(text)
            except ValueError as exc:
                raise InvalidSpec(fields.at(resource), str(exc)) from None
            out.append((resource, str(text)))
        return tuple(out)

    def done(self) -> None:
        unknown = sorted(set(self._raw) - self._seen)
        if unknown:
            raise InvalidSpec(self.at(unknown[0]), "unknown field")
