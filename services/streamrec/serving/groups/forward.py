"""The forwarding hop: a request for another group's user, sent to that group's Service.

urllib3's `PoolManager` keeps connections to each group open across requests (one pool per
group, ``threads`` connections each: a worker's request threads), so a hop costs one HTTP
round trip, not a TCP handshake. Nothing is retried: a group that does not answer within
``timeout`` seconds (connect and read) gets the client a 503 ``owner_unavailable`` naming it,
with ``Retry-After``; the client's own retry is the one that counts. A forwarded request carries
`FORWARDED_HEADER` (the sending group), and the owner answers such a request itself even when
it thinks another group owns the user (two pods that disagree about the layout, mid-rollout):
a request is forwarded at most once. (A pod whose snapshot holds only its own users, split by
partition, answers such a request 503 ``owner_unavailable`` instead: ``http/groups.py``.)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import urllib3
from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

__all__ = ["FORWARDED_HEADER", "GROUP_HEADER", "ForwardError", "Forwarded", "Forwarder"]

#: Set on a forwarded request: the index of the group that forwarded it.
FORWARDED_HEADER = "X-Streamrec-Forwarded-By"
#: Set on every answer of a sharded deployment: the group that answered.
GROUP_HEADER = "X-Streamrec-Group"
#: Request headers passed on (the rest are the hop's own: Host, Connection, lengths...).
PASSED = ("Accept", "Authorization", "Content-Type", "User-Agent", "X-Request-Id",
          "traceparent", "tracestate")
_PASSED = frozenset(h.lower() for h in PASSED)
#: Answer headers passed back.
RETURNED = ("Content-Type", "Retry-After", "WWW-Authenticate", "Allow", "X-Recommendation-Id",
            GROUP_HEADER)
RETRY_AFTER_S = 1

FORWARDS = Counter("streamrec_group_forwards_total",
                   "Requests for another serving group's user, by owner group and result "
                   "(answered: any status the owner gave; unavailable: no answer within the "
                   "timeout, answered 503; loop: forwarded to a group that does not own the "
                   "user, answered there)", ["group", "result"])
FORWARD_SECONDS = Histogram("streamrec_group_forward_seconds",
                            "Seconds of the forwarding hop (request sent to answer read), by "
                            "owner group", ["group"],
                            buckets=(.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))


class ForwardError(Exception):
    """A forwarded request that has no answer to pass on as it is: a group that did not
    answer (503 ``owner_unavailable``), or a batch's group that answered an error. The HTTP
    layer answers it as ``{"error": code, "message"}`` with ``status`` and ``headers``."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Forwarded:
    """The owner's answer: ``status``, ``body`` bytes and the `RETURNED` ``headers``."""

    status: int
    body: bytes
    headers: Mapping[str, str]


class Forwarder:
    """Sends requests to the groups' base URLs (``group_urls``, in group order).

    Parameters
    ----------
    urls : sequence of str
        Each group's base URL, ``scheme://host[:port]`` (``Config.group_urls``).
    timeout : float
        Seconds to connect and read the whole answer, together (``Config.forward_timeout``).
    connections : int
        Connections kept per group (a worker's request threads).
    """

    def __init__(self, urls: Sequence[str], timeout: float, connections: int) -> None:
        self.urls, self.timeout = tuple(urls), timeout
        # ``total``: connect and answer within ``timeout`` together. One retry, of the connect
        # only (a pooled connection the owner's gunicorn closed as it was reused, an owner
        # restarting): a request that reached the owner is never sent twice.
        self._pool = urllib3.PoolManager(
            num_pools=max(len(self.urls), 1), maxsize=max(connections, 1), block=False,
            retries=urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0),
            timeout=urllib3.Timeout(total=timeout))
        # A batch's sub-requests go out at once: every request thread's batch, to each other
        # group, without waiting behind another's.
        for group in range(len(self.urls)):  # every series on /metrics from the start
            for result in ("answered", "unavailable", "loop"):
                FORWARDS.labels(str(group), result)
        self._fan = ThreadPoolExecutor(
            max_workers=max(connections, 1) * max(len(self.urls) - 1, 1),
            thread_name_prefix="forward")

    def send(self, group: int, method: str, target: str, headers: Iterable[tuple[str, str]],
             body: bytes | None, sender: int) -> Forwarded:
        """Send one request to ``group``; its answer, whatever its status.

        ``target`` is the path and query as this server received them (ids still
        percent-encoded); ``sender`` this group's index (`FORWARDED_HEADER`).

        Raises
        ------
        ForwardError
            503 ``owner_unavailable`` when the group cannot be reached or does not answer
            within the timeout.
        """
        url = self.urls[group] + target
        passed = {k: v for k, v in headers if k.lower() in _PASSED}
        passed[FORWARDED_HEADER] = str(sender)
        label = str(group)
        started = time.perf_counter()
        try:
            r = self._pool.request(method, url, body=body, headers=passed, redirect=False,
                                   preload_content=True)
        except urllib3.exceptions.HTTPError as e:
            FORWARDS.labels(label, "unavailable").inc()
            # Rate-limited like the broker's reconnects (logthrottle.BROKER_LOGGERS).
            log.warning("serving group %d (%s) did not answer: %s", group, self.urls[group], e)
            raise ForwardError(
                503, "owner_unavailable",
                f"this user belongs to serving group {group}, which {_why(e, self.timeout)}; "
                f"retry shortly", {"Retry-After": str(RETRY_AFTER_S)}) from None
        FORWARD_SECONDS.labels(label).observe(time.perf_counter() - started)
        FORWARDS.labels(label, "answered").inc()
        got = {k: r.headers[k] for k in RETURNED if k in r.headers}
        got.setdefault(GROUP_HEADER, label)
        return Forwarded(r.status, r.data, got)

    def batch(self, target: str, query: Mapping[str, str], users: Mapping[int, list[str]],
              headers: Iterable[tuple[str, str]], sender: int) -> dict[int, dict[str, Any]]:
        """``GET target?users=...&query`` on each group of ``users`` at once; each group's
        JSON answer.

        Raises
        ------
        ForwardError
            The first group's error as it answered it (status and body), or 503
            ``owner_unavailable`` for a group that did not answer: a batch is whole or not
            at all.
        """
        headers = list(headers)  # read by each sub-request

        def one(group: int) -> tuple[int, Forwarded]:
            # "," kept as it is: a batch of short ids stays within gunicorn's request line.
            q = urlencode({**query, "users": ",".join(users[group])}, safe=",")
            return group, self.send(group, "GET", f"{target}?{q}", headers, None, sender)

        out: dict[int, dict[str, Any]] = {}
        try:
            answers = list(self._fan.map(one, sorted(users)))
        except RuntimeError:  # the pool is shut down: this worker is stopping
            raise ForwardError(503, "owner_unavailable", "this server is stopping; retry",
                               {"Retry-After": str(RETRY_AFTER_S)}) from None
        for group, answer in answers:
            try:
                body = json.loads(answer.body)
            except ValueError:
                body = None
            if answer.status != 200 or not isinstance(body, dict):
                error = body if isinstance(body, dict) else {}
                said = error.get("message") or answer.body[:200].decode("utf-8", "replace")
                raise ForwardError(
                    answer.status if answer.status >= 400 else 502,
                    str(error.get("error", "owner_error")), f"serving group {group}: {said}",
                    {k: v for k, v in answer.headers.items() if k == "Retry-After"})
            out[group] = body
        return out

    def close(self) -> None:
        self._fan.shutdown(wait=False, cancel_futures=True)
        self._pool.clear()


def _why(error: urllib3.exceptions.HTTPError, timeout: float) -> str:
    """What went wrong with the hop, in the 503's words: no answer in time, or no
    connection at all (a group that is down answers at once: connection refused)."""
    reason = getattr(error, "reason", None) or error
    # NewConnectionError first: urllib3 makes it a ConnectTimeoutError (for compatibility).
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return "could not be reached (no connection)"
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return f"did not answer within {timeout:g} s"
    return "broke off the answer"
