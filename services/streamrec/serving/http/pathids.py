"""Ids in URL paths as the client sent them: ``/`` (as ``%2F``) included, bad UTF-8 refused.

WSGI servers hand the app a ``PATH_INFO`` that is already percent-decoded, so
``/users/a%2Fb/items`` arrives as ``/users/a/b/items`` and no route matches (a 405); and werkzeug
decodes the path's bytes as UTF-8 with replacement, so two ids that are not UTF-8 collide as
U+FFFD. `RawPathIds` rebuilds ``PATH_INFO`` from the raw request target that every server
gives (gunicorn ``RAW_URI``, waitress and werkzeug ``REQUEST_URI``): the segments stay split at
the client's real slashes, and each segment is re-encoded so that it holds no ``/`` and only
ASCII. The ``id`` converter (`IdConverter`, ``<id:user>``) then decodes one segment to the id:
strict UTF-8, else a 400 ``bad_id`` naming the field (never a silent replacement).

Without a raw target (another server), ``PATH_INFO`` is re-encoded the same way, so bad UTF-8 is
still a 400; only an id holding ``/`` cannot be told from two segments there.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

from werkzeug.exceptions import BadRequest
from werkzeug.routing import BaseConverter

#: What stays literal in a re-encoded segment (RFC 3986 unreserved + sub-delims + ":@").
_SAFE = "-._~!$&'()*+,;=:@"


class BadPathId(BadRequest):
    """A path segment or query parameter that is not UTF-8: 400 ``bad_id``."""

    api_code = "bad_id"


def _segments(path_bytes: bytes) -> str:
    return "/".join(quote(unquote_to_bytes(seg), safe=_SAFE) for seg in path_bytes.split(b"/"))


def _raw_path(environ: dict[str, Any]) -> bytes | None:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        return None
    text = str(raw)
    path = urlsplit(text).path if "://" in text.split("?", 1)[0] else text.split("?", 1)[0]
    return path.encode("latin-1", "replace")  # WSGI strings are bytes as latin-1 (PEP 3333)


class RawPathIds:
    """WSGI middleware: ``PATH_INFO`` from the raw request target, segment by segment encoded."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        script = str(environ.get("SCRIPT_NAME", "")).encode("latin-1", "replace")
        full = script + str(environ.get("PATH_INFO", "")).encode("latin-1", "replace")
        raw = _raw_path(environ)
        # The raw target is used when it is this request's path (no middleware or proxy in the
        # process rewrote PATH_INFO); compared as text with replacement, since some servers
        # (werkzeug's test client) already replaced bad UTF-8 in PATH_INFO.
        if raw is not None and raw.startswith(script) and _text(unquote_to_bytes(raw)) == \
                _text(full):
            environ["PATH_INFO"] = _segments(raw[len(script):])
        else:
            environ["PATH_INFO"] = _segments(full[len(script):])
        return self.app(environ, start_response)


def _text(path: bytes) -> str:
    return path.decode("utf-8", "replace")


def check_query(query: bytes) -> None:
    """400 ``bad_id`` when a query parameter's name or value is not UTF-8 after
    percent-decoding (werkzeug keeps such bytes as ``%FF`` text, which would make them the id
    ``"%FF"``, colliding with a real one)."""
    for pair in query.split(b"&"):
        for part in pair.split(b"=", 1):
            try:
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError as e:
                name = pair.split(b"=", 1)[0][:40].decode("ascii", "replace")
                raise BadPathId(f"query parameter {name!r} is not valid UTF-8 after "
                                f"percent-decoding (byte {e.start}); ids are UTF-8 text") from None


class IdConverter(BaseConverter):
    """``<id:name>``: one path segment of `RawPathIds`' ``PATH_INFO``, decoded to the id."""

    regex = "[^/]+"
    part_isolating = True

    def to_python(self, value: str) -> str:
        try:
            return unquote_to_bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadPathId(f"a path id is not valid UTF-8 after percent-decoding (byte "
                            f"{e.start}); ids are UTF-8 text") from None

    def to_url(self, value: str) -> str:
        return quote(value, safe=_SAFE)
