"""HTTP errors and query-parameter parsing for the serving API, with no Flask in sight.

Every bad input becomes an :class:`ApiError` carrying the status and a stable ``error`` code, so
the app's error handler can answer ``{"error", "message"}`` and a 500 can only mean a bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streamrec.core.events.codec import check_id
from streamrec.core.events.event import InvalidEvent

MAX_N = 1000
MAX_LIST = 1000


class ApiError(Exception):
    """An error the client can act on: ``status`` 4xx/503, ``code`` stable, ``message`` human."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})  # e.g. WWW-Authenticate on a 401


def check_keys(args: Mapping[str, Any], allowed: Iterable[str], where: str = "query") -> None:
    """400 for keys the endpoint does not know (a typo must not be silently ignored).

    ``where`` is ``"query"`` for query parameters (a `MultiDict`: a key given twice or with an
    empty value is refused too, since either would silently pick one meaning) or ``"body"``
    for the keys of a JSON body.
    """
    what = "query parameter(s)" if where == "query" else "body key(s)"
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ApiError(400, "unknown_parameter", f"unknown {what}: {', '.join(unknown)}")
    if where != "query":
        return
    getlist = getattr(args, "getlist", None)
    for key in sorted(args):
        values = getlist(key) if getlist is not None else [args[key]]
        if len(values) > 1:
            raise ApiError(400, "repeated_parameter",
                           f"query parameter {key!r} is given {len(values)} times; give it once")
        if values[0] == "":
            raise ApiError(400, "empty_parameter",
                           f"query parameter {key!r} is empty; leave it out for the default")


def parse_n(raw: object, name: str = "n", default: int = 10) -> int:
    """An integer in 1..MAX_N (a JSON int or its ASCII decimal text); default when absent."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        raise ApiError(400, "bad_parameter", f"{name} must be an integer in 1..{MAX_N}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and 0 < len(raw.strip()) <= 12 and raw.strip().isascii() \
            and raw.strip().isdigit():
        value = int(raw.strip())
    else:
        raise ApiError(400, "bad_parameter",
                       f"{name} must be an integer in 1..{MAX_N}, got {raw!r}")
    if not 1 <= value <= MAX_N:
        raise ApiError(400, "bad_parameter", f"{name} must be in 1..{MAX_N}, got {value}")
    return value


def parse_bool(raw: object, name: str, default: bool) -> bool:
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        v = raw.strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
    raise ApiError(400, "bad_parameter", f"{name} must be true or false, got {raw!r}")


def parse_list(raw: str | None, name: str) -> list[str] | None:
    """A comma list of ids; None when absent. An empty entry (``a,,b``, a trailing comma) is a
    400 ``bad_parameter``: dropping it silently could turn ``category=,`` into no filter."""
    if raw is None:
        return None
    values = raw.split(",")
    if "" in values:
        raise ApiError(400, "bad_parameter", f"{name} has an empty entry (entry "
                                             f"{values.index('') + 1} of {len(values)}); "
                                             "give comma-separated non-empty ids")
    if len(values) > MAX_LIST:
        raise ApiError(400, "bad_parameter", f"{name} lists more than {MAX_LIST} ids")
    for value in values:  # every id is checked where it enters, as in events and paths
        try:
            check_id(value, name)
        except InvalidEvent as e:
            raise ApiError(400, "bad_id", e.detail) from None
    return values


def require(raw: str | None, name: str) -> str:
    """The required query parameter ``name``: 400 ``missing_parameter`` when absent,
    ``empty_parameter`` when given empty (as every other parameter, ``check_keys``)."""
    if raw is None:
        raise ApiError(400, "missing_parameter", f"query parameter {name!r} is required")
    if raw == "":
        raise ApiError(400, "empty_parameter", f"query parameter {name!r} is empty; it is "
                                               "required")
    return raw
