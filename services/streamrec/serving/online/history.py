"""The retrain history of ``GET /stats``: the snapshots this worker loaded, newest last."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from ..live.holder import Served

__all__ = ["HISTORY", "ModelHistory"]

#: Snapshots remembered for the retrain history (this worker's loads).
HISTORY = 50


class ModelHistory:
    """The last `HISTORY` snapshots this worker loaded: fit time, window size, sizes."""

    def __init__(self, size: int = HISTORY) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, served: Served) -> None:
        m = served.snapshot.manifest
        with self._lock:
            # As in /model and the manifest: created_at RFC 3339, created_at_unix seconds.
            self._items.append({"version": m.version, "created_at": m.created_at,
                                "created_at_unix": m.created_at_unix,
                                "loaded_at": served.loaded_at, "fit": m.fit,
                                "window": m.window, "sizes": m.sizes})

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items)
