"""Serving groups at the HTTP edge: any pod answers any request, one hop at most.

- ``forward.py``: the HTTP client of the hop (urllib3's pooled connections), with its timeout,
  its clear 503 and its metrics; it also fans a batch out by owner;
- ``prefix.py``: ``/groups/<g>/...`` (a group's Ingress path) answered as ``/...``.

``http/groups.py`` says which requests belong to a user and holds the ``before_request`` hook
that forwards those of another group's user to their owner (``core/groups.py`` says who owns
whom).

Requests that touch no user (similar, next, popular, an anonymous session, items, the console,
the metrics) are answered locally: every group maps the whole item side. docs/groups.md.
"""
