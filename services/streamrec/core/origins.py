"""Web origins (RFC 6454) as settings hold them: ``scheme://host[:port]``, normalised.

``allowed_origins`` (the pages of other sites that may write, ``serving/http/writes.py``) is a
list of these; a browser's ``Origin`` header is compared with it after the same normalisation.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port or a trailing slash;
    ``ValueError`` naming the problem when ``origin`` is not an origin (a path, no host...)."""
    text = origin.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{origin!r} is not an origin: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin: expected http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username \
            or parts.password:
        raise ValueError(f"{origin!r} is not an origin: only scheme://host[:port], no path")
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def parse_origins(raw: str) -> tuple[str, ...]:
    """A comma-separated list of origins (``STREAMREC_ALLOWED_ORIGINS``), normalised, in order,
    without repeats; ``ValueError`` naming the first that is not an origin or an empty entry."""
    out: list[str] = []
    for entry in raw.split(","):
        if not entry.strip():
            raise ValueError(f"empty entry in {raw!r}; give comma-separated origins")
        origin = normalise_origin(entry)
        if origin not in out:
            out.append(origin)
    return tuple(out)
