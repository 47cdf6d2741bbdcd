"""Serving groups over HTTP: which requests belong to a user, and the hook that forwards another
group's user's requests (``groups/forward.py`` is the client, ``core/groups.py`` the layout).

`USER_ROUTES` maps each route (Flask endpoint) that answers from one user's state (their
vector, history, fresh events, last served list) to where the request names the user. Before
such a view runs, `route_to_owner` sends the request to the user's group when that is not this
one, and answers with the owner's answer as it came (status, body, ``X-Recommendation-Id``).
`LOCAL_USER_ROUTES` name a user but answer the same on every group: an experiment's arm is a
hash, and an erasure goes to the log (``http/erase.py`` writes it where the owner reads).
``GET /recommendations/batch`` splits its users by owner (``http/recommend.py``).

A unit test holds every route with a user in it to one of the two lists, so a new one cannot
be served from the wrong group by accident.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, request

from streamrec.core.snapshot.layout import partitions_to_read

from ..groups.forward import (
    FORWARDED_HEADER,
    FORWARDS,
    GROUP_HEADER,
    RETRY_AFTER_S,
    ForwardError,
)
from .context import service
from .errors import ApiError
from .handlers import api_error

__all__ = ["BATCH_ROUTE", "LOCAL_USER_ROUTES", "USER_ROUTES", "bp"]

bp = Blueprint("groups", __name__)


def _path_user() -> str | None:
    return (request.view_args or {}).get("user")


def _arg(name: str) -> Callable[[], str | None]:
    return lambda: request.args.get(name)


#: Endpoint -> the user it answers for (None: the view answers its own 400).
USER_ROUTES: dict[str, Callable[[], str | None]] = {
    "recommend.user_recommendations": _path_user,
    "recommend.query_recommendations": _arg("user"),
    "recommend.compat": _arg("userId"),
    "browse.because": _path_user,
    "browse.user_items": _path_user,
}
#: Endpoints that name a user and answer the same on any group.
LOCAL_USER_ROUTES = frozenset({"experiments.user_arm", "erase.delete_user"})
#: The batch route: its users are split by owner in the view.
BATCH_ROUTE = "recommend.batch_recommendations"


#: Path segments an HTTP client would resolve away (RFC 3986 dot segments), as ids: "." and
#: ".." are ids like any other, sent percent-encoded so that they reach the owner as sent.
_DOTS = {".": "%2E", "..": "%2E%2E"}


def target() -> str:
    """The request's path and query as received (ids percent-encoded, ``pathids.py``)."""
    environ = request.environ
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    path = "/".join(_DOTS.get(segment, segment) for segment in path.split("/"))
    query = str(environ.get("QUERY_STRING", ""))
    return path + ("?" + query if query else "")


@bp.before_app_request
def route_to_owner() -> Response | None:
    """Forward the request when it is another group's user's; None: answer it here."""
    user_of = USER_ROUTES.get(request.endpoint or "")
    # GET and HEAD only: a CORS preflight (OPTIONS) is this server's to answer.
    if user_of is None or request.routing_exception is not None or \
            request.method not in ("GET", "HEAD"):
        return None
    svc = service()
    forwarder, layout = svc.forwarder, svc.groups
    if forwarder is None:
        return None
    user = user_of()
    if not user:
        return None
    owner = layout.owner(user)
    if owner == layout.group:
        return None
    sender = request.headers.get(FORWARDED_HEADER)
    # Forwarded once already: never a second hop. (A client that sends the header gets this
    # group's answer: the snapshot's, without the user's fresh events; nothing more.) Pods of
    # two layouts disagree on the owner while the group count changes; a pod whose snapshot
    # holds only its own users (split by partition) has no answer for this one, and says so.
    if sender is not None:
        FORWARDS.labels(str(owner), "loop").inc()
        if _holds_only_own_users():
            raise ApiError(503, "owner_unavailable",
                           f"this replica of group {layout.group} holds only its own users and "
                           f"another replica sent user {user!r} here (the serving groups are "
                           f"changing); retry", {"Retry-After": str(RETRY_AFTER_S)})
        return None
    # A HEAD is asked as a GET: werkzeug drops the body of the answer to a HEAD and keeps its
    # length, which an answer to a forwarded HEAD would not have.
    answer = forwarder.send(owner, "GET", target(), request.headers.items(), None,
                            layout.group)
    return Response(answer.body, status=answer.status, headers=dict(answer.headers))


def _holds_only_own_users() -> bool:
    """Whether the served snapshot holds this group's users only: split by the partition
    count the group expects (format 9, ``core/snapshot/usersides.py``)."""
    served = service().live.current()
    shard = service().reloader.shard
    return served is not None and partitions_to_read(served.snapshot.manifest, shard) is not None


@bp.app_errorhandler(ForwardError)
def forward_error(e: ForwardError) -> tuple[Response, int]:
    """The forwarding client's error (its floor knows no HTTP layer) answered as every
    `ApiError` is (``handlers.api_error``)."""
    return api_error(ApiError(e.status, e.code, e.message, e.headers))


@bp.after_app_request
def name_the_group(response: Response) -> Response:
    """Sharded: every answer says which group answered (``X-Streamrec-Group``)."""
    if service().forwarder is not None:
        response.headers.setdefault(GROUP_HEADER, str(service().groups.group))
    return response
