"""``/groups/<g>/...``: the Ingress path of serving group g, answered as ``/...``.

With serving groups the operator routes ``<path>groups/<g>`` of the Ingress to group g's own
Service (``operator/builders.py``), so a client that computes a user's group
(``core/groups.py``, docs/groups.md) reaches the owner without the forwarding hop. The Ingress
passes the path on as it is; this WSGI middleware moves the prefix from ``PATH_INFO`` to
``SCRIPT_NAME`` (the WSGI way of saying "mounted under"), so every route answers under it and
``RawPathIds`` still sees the client's raw ids. A request that reaches another group under a
group's prefix (a stale client) is answered all the same: the prefix names a route, not a
promise, and the groups' own forwarding takes it to the owner.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["GroupPrefix"]

_PREFIX = re.compile(r"^(/groups/[0-9]{1,2})(/.*)?$", re.DOTALL)


class GroupPrefix:
    """WSGI middleware: ``/groups/<g>`` moved from ``PATH_INFO`` to ``SCRIPT_NAME``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        m = _PREFIX.match(str(environ.get("PATH_INFO", "")))
        if m is not None:
            environ["SCRIPT_NAME"] = str(environ.get("SCRIPT_NAME", "")) + m.group(1)
            environ["PATH_INFO"] = m.group(2) or "/"
        return self.app(environ, start_response)
