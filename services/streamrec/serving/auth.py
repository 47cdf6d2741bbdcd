"""Bearer-token authentication of the routes that write: ingest and erasure.

With ``ingest_token`` set, ``POST /interactions``, ``DELETE /users/{user}`` and
``DELETE /items/{item}`` need ``Authorization: Bearer <token>``; without it they are open (the
embedded mode on a laptop). The scheme is case-insensitive (RFC 9110) and the token is compared
in constant time.
"""

from __future__ import annotations

import hmac

from flask import request

from .errors import ApiError

__all__ = ["require_bearer"]


def require_bearer(token: str | None) -> None:
    """Raise a 401 ``ApiError`` (with ``WWW-Authenticate``) unless the request carries
    ``token``; do nothing when ``token`` is None."""
    if token is None:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8"), token.encode("utf-8")):
        raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer' is required",
                       {"WWW-Authenticate": 'Bearer realm="streamrec"'})
