"""The worker's `Service`, as the views reach it: ``current_app.extensions["streamrec"]``."""

from __future__ import annotations

from typing import cast

from flask import current_app

from ..live.model import LiveModel
from ..service import Service

__all__ = ["live", "service"]

#: The key of the `Service` in ``app.extensions`` (set by ``create_app``).
KEY = "streamrec"


def service() -> Service:
    """The `Service` of the app handling the current request."""
    return cast(Service, current_app.extensions[KEY])


def live() -> LiveModel:
    """The live model of the app handling the current request."""
    return service().live
