"""Write guards: only the application may write, only as JSON, never from another site's page.

Every route with an unsafe method (POST, PUT, PATCH, DELETE) passes `check_write` before its
handler (docs/serving.md, "Who may write"):

1. **Cross-site browser requests are refused** (403 ``cross_site``). A browser marks each
   request with Fetch Metadata (``Sec-Fetch-Site``) and, on unsafe methods, ``Origin``. A request
   is refused when ``Sec-Fetch-Site`` is ``cross-site``, or its ``Origin`` is neither this
   server's own (same scheme-less authority as ``Host``) nor on ``allowed_origins``. A client
   that sends neither header (curl, a backend, Kafka-side tools) is not a browser page and is not
   concerned; ``same-origin``, ``same-site`` with an allowed Origin and ``none`` (typed by the
   user) pass. This is the OWASP "Fetch Metadata" plus "verify origin" defence against CSRF:
   without it a page on any other site could post a "simple" ``text/plain`` request to a server
   without a token (``streamrec run``'s default).
2. **A body must be JSON** (415 ``unsupported_media_type``): ``Content-Type: application/json``,
   parameters such as ``charset=utf-8`` allowed. HTML forms and ``no-cors`` fetches cannot send
   that type without a CORS preflight, so this also closes what the first rule might miss.

`read_body` reads a request body under the size limit, whatever the framing: a chunked body
over the limit is a 413 under every WSGI server, never a truncated body that fails as bad JSON.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from flask import Request, Response
from werkzeug.exceptions import RequestEntityTooLarge

from streamrec.core.origins import normalise_origin

from .errors import ApiError

#: Largest accepted request body (POST /interactions, /recommendations, /items...).
MAX_BODY = 1 << 20
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"


def _same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` names this server: its host and port are the request's ``Host``
    (default ports as equal as omitted ones). The scheme is the Origin's own: TLS is often
    ended by a proxy in front, so the server cannot tell which scheme the page used."""
    try:
        normalised = normalise_origin(origin)
        scheme = urlsplit(normalised).scheme
        return normalised == normalise_origin(f"{scheme}://{host}")
    except ValueError:
        return False


def check_write(request: Request, allowed_origins: Collection[str]) -> None:
    """403 ``cross_site`` or 415 ``unsupported_media_type`` for an unsafe request that may not
    write (module docstring); nothing for safe methods."""
    if request.method not in UNSAFE:
        return
    origin = request.headers.get("Origin")
    site = (request.headers.get("Sec-Fetch-Site") or "").strip().lower()
    allowed = False
    if origin is not None:
        try:
            allowed = normalise_origin(origin) in allowed_origins
        except ValueError:  # "null" (sandboxed frames, file:), garbage: never allowed
            allowed = False
        same = _same_origin(origin, request.host or "") and site != "cross-site"
        if not (allowed or same):
            raise ApiError(403, "cross_site", f"writes from the origin {origin[:100]!r} are "
                           "refused: it is not this server's origin nor in allowed_origins")
    if site == "cross-site" and not allowed:
        raise ApiError(403, "cross_site", "cross-site browser writes are refused "
                       "(Sec-Fetch-Site: cross-site); add the page's origin to allowed_origins")
    if request.content_length == 0 or (request.content_length is None
                                       and "chunked" not in request.headers.get(
                                           "Transfer-Encoding", "").lower()):
        return  # no body (DELETE): nothing to type
    if request.mimetype != JSON:
        given = request.headers.get("Content-Type") or "none"
        raise ApiError(415, "unsupported_media_type", f"the body must be {JSON} (charset "
                       f"utf-8 allowed), got Content-Type {given[:100]!r}")


def cors(request: Request, response: Response, allowed_origins: Collection[str]) -> None:
    """CORS (Fetch standard) for the pages of ``allowed_origins`` only: they may read the
    answers, and a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) lets their
    JSON writes through, with ``Content-Type`` and ``Authorization``. No credentials mode:
    the bearer token is a header, never a cookie. Every other origin gets no CORS header, so
    its page cannot send a JSON write at all (the preflight fails in the browser)."""
    if not allowed_origins:
        return
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if origin is None:
        return
    try:
        if normalise_origin(origin) not in allowed_origins:
            return
    except ValueError:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"


def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes; 413 beyond (werkzeug's
    ``RequestEntityTooLarge``, as for a too large ``Content-Length``), chunked or not.

    The app's ``MAX_CONTENT_LENGTH`` must be above ``limit`` (``limit + 1``): werkzeug then
    refuses a larger ``Content-Length`` itself, and a stream without one (chunked, under a
    server that de-chunks, as gunicorn does) yields at most ``limit + 1`` bytes, which is
    how a body that went past the limit is told from one that ended on it."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:  # a raw stream may return less than asked: read until EOF or past
        chunk = request.stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise RequestEntityTooLarge(f"the request body is larger than {limit} bytes")
    return b"".join(chunks)
