"""The periodic status refresh of every RecommenderService: one operator task, not a kopf timer.

A kopf timer puts a finalizer on every resource it runs for (kopf stops timers through it), and
a finalizer that only the operator removes makes a resource undeletable once the operator is
gone. ``helm uninstall`` deletes the operator's Deployment and RBAC before the chart's example
resource (helm deletes kinds it does not know last), so the example hung in ``Terminating``
with its namespace (found by tests/e2e/test_helm_skaffold.py on the real node). No finalizer
is needed at all: every child carries an owner reference, and the garbage collector deletes it.

Which resources exist comes from a kopf index (``handlers.recommenderservices``): kopf keeps it
from the same watch stream as the handlers, only for the namespaces the operator serves, and
an index puts no finalizer on anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

#: (namespace, name) of one RecommenderService.
Key = tuple[str, str]


async def refresh_forever(
    keys: Callable[[], Iterable[Key]],
    refresh_one: Callable[[str, str], None],
    interval: float,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Every ``interval`` seconds, call ``refresh_one(namespace, name)`` for each key, in a
    worker thread (it does blocking API and S3 reads). Runs until cancelled.

    ``keys`` is read on the event loop, where kopf updates the index, so the set never changes
    while it is copied. One resource's failure is logged and never stops the others' refresh;
    the next round retries it.
    """
    while True:
        await asyncio.sleep(interval)
        for namespace, name in sorted(keys()):
            try:
                await asyncio.to_thread(refresh_one, namespace, name)
            except Exception as exc:  # noqa: BLE001 - logged; the next round retries
                logger.warning("status refresh of %s/%s failed, will retry: %s",
                               namespace, name, exc)
