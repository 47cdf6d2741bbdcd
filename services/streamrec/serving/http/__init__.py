"""The HTTP layer: Flask Blueprints, one module per concern; each route parses, asks, answers.

- ``recommend.py``: personal lists (by user, by query, the original service's ``/``, an
  anonymous session, a batch);
- ``browse.py``: similar items, popular items, ``because``, a user's known items;
- ``items.py``: the catalogue (``GET``/``PUT /items/{item}``, ``POST /items``);
- ``interactions.py``: ``POST /interactions`` (ingest);
- ``erase.py``: ``DELETE /users/{user}``, ``DELETE /items/{item}``;
- ``online.py``: ``GET /stats``;
- ``ops.py``: health, readiness, ``/model``, ``/metrics``, ``/openapi.json``, the console;
- ``handlers.py``: errors as ``{"error", "message"}`` and per-route metrics, for the whole app.

Below them: ``errors.py`` and ``bodies.py`` (parsing, no Flask), ``params.py`` (query
parameters), ``guards.py`` (authentication, producing to the log) and ``context.py`` (the
worker's `Service`). Routes ask the live model (``serving/live/``); they join nothing
themselves.
"""
