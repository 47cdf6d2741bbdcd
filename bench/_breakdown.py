"""Where one ``GET /users/{u}/recommendations?n=10`` spends its time, part by part.

In one process, on the app a worker builds (``create_app`` over the same memory-mapped
snapshot, its catalogue, online tracking on), for the same users, one thread:

- ``wsgi``: the whole Flask app called as gunicorn calls it (``app(environ, start_response)``
  with a prepared environ, the body read); what gunicorn and the socket add on top is the HTTP
  p50 of the load test minus this;
- the parts, each timed alone on the same request, in the order the request runs them:
  ``joins`` (the live state: seen-stays-seen, the served snapshot, the user's fresh events,
  the catalogue restriction), ``history`` (the user's row, fresh rows, the recency-weighted
  capped history and its aggregation), one row per scorer of the blend table
  (``scorer:<name>``: its scores of every item), ``blend`` (standardise and sum), ``top-n``
  (the banned set, candidates, the ranking, ids and scores as lists), ``json`` (the answer
  encoded and its response built) and ``tracking`` (the recommendation id and the last-list
  LRU);
- ``routing, params, Flask``: ``wsgi`` minus the parts: URL matching, the request object, the
  query's parsing, the view, the response's headers; and for reference ``GET /healthz``
  through the same app, what Flask, the middleware and the app-wide handlers cost alone.

The parts repeat the model's own steps through its building blocks (``Model._row`` and the
rest) so each can be timed; the test ``tests/unit/test_serving_fast_path.py`` keeps the
answers of the request path equal to the plain path's, so what is timed here is what runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from flask import Flask, jsonify
from werkzeug.test import EnvironBuilder

from streamrec.core.events.feedback import aggregate
from streamrec.core.scoring.blend import blend
from streamrec.core.scoring.rules import rank_scores
from streamrec.serving.live.answers import ListQuery

PARTS = ("joins", "history", "blend", "top-n", "json", "tracking")


def _p50(us: list[float]) -> float:
    return float(np.percentile(np.asarray(us), 50)) if us else float("nan")


def breakdown(app: Flask, users: list[str], calls: int) -> dict[str, Any]:
    """p50 µs of the whole WSGI call and of each part, over ``calls`` requests (users cycled);
    the rows in request order, then the residual (routing, params, Flask)."""
    service = app.extensions["streamrec"]
    live = service.live
    environs = [EnvironBuilder(path=f"/users/{u}/recommendations",
                               query_string="n=10").get_environ() for u in users[:512]]

    healthz = EnvironBuilder(path="/healthz").get_environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    def wsgi(k: int, environ: dict[str, Any] | None = None) -> None:
        body = app(dict(environs[k % len(environs)] if environ is None else environ),
                   start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()

    times: dict[str, list[float]] = {"wsgi": []}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append((time.perf_counter() - t) * 1e6)
        return out

    for k in range(min(200, calls)):  # warm: lazy caches, the catalogue's model view
        wsgi(k)
    q = ListQuery(n=10)
    with app.app_context():
        # Interleaved, request by request, so the whole and its parts see the same caches
        # and the same moments of a shared machine.
        for k in range(calls):
            timed("wsgi", lambda k=k: wsgi(k))
            timed("healthz", lambda: wsgi(0, healthz))
            _parts(live, service, users[k % len(environs)], q, timed)
    rows = [{"part": "WSGI app, whole request (in process)", "p50_us": _p50(times["wsgi"])}]
    scorer_rows = sorted(n for n in times if n.startswith("scorer:"))
    order = ["joins", "history", *scorer_rows, "blend", "top-n", "json", "tracking"]
    parts_sum = 0.0
    for name in order:
        p = _p50(times[name])
        parts_sum += p
        rows.append({"part": name, "p50_us": p})
    rows.append({"part": "routing, params, Flask (WSGI minus the parts)",
                 "p50_us": max(0.0, rows[0]["p50_us"] - parts_sum)})
    rows.append({"part": "reference: GET /healthz through the same app (Flask's floor)",
                 "p50_us": _p50(times["healthz"])})
    return {"calls": calls, "rows": rows, "parts_p50_sum_us": parts_sum}


def _parts(live: Any, service: Any, user: str, q: ListQuery,
           timed: Callable[[str, Callable[[], Any]], Any]) -> None:
    """One request's parts, each timed (the steps of LiveModel.recommend and Model.recommend
    for the per-request blend)."""
    def joins() -> tuple[Any, Any, Any, Any]:
        qq = live._seen(user, q)
        s = live.served()
        extra = live.fresh.timed(user)
        return qq, s, extra, live._restriction(s, qq.filter)

    qq, s, extra, restrict = timed("joins", joins)
    model = s.snapshot.model
    scoring = model.scoring

    def history() -> tuple[Any, ...]:
        row, fresh = model._row(user), model.fresh_rows(extra or None)
        seen, weights = model._items_of(row, fresh)
        idx, w = aggregate(*model._weighted_history(row, fresh, scoring))
        return seen, weights, idx, w

    seen, weights, idx, w = timed("history", history)
    table = model.blend_table(scoring)
    scores = {name: timed(f"scorer:{name}", lambda name=name: model.scorers[name].scores(idx, w))
              for name in table}
    blended = timed("blend", lambda: blend(scores, table))

    def top_n() -> Any:
        banned = model._banned(qq.exclude, seen if qq.exclude_seen else None, restrict,
                               seen[weights <= 0])
        return model._result(rank_scores(blended, qq.n, banned,
                                         model._candidates(qq.items, restrict)))

    recs = timed("top-n", top_n)

    def encode() -> Any:
        return jsonify(user=user, items=[{"item": i, "score": v} for i, v in
                                         zip(recs.items, recs.scores, strict=True)],
                       model_version=s.version, fallback=recs.fallback,
                       fresh_events=len(extra), recommendation_id="0123456789abcdef0123")

    timed("json", encode)
    timed("tracking", lambda: service.track(user, s.version, recs.items))
