"""The training engine: what turns the window matrix into ALS factors (``training_engine``).

``implicit`` (the default) fits in the trainer process (``core/scoring/training.py``);
``spark`` makes the trainer a Spark driver (``adapters/spark.py``, docs/spark.md). Either
returns the same :class:`Model`, which the fit job writes with the same snapshot writer; the
manifest's ``fit.engine`` and ``params.als.regularization_scaling`` say which one ran.
"""

from __future__ import annotations

from typing import Protocol

from streamrec.adapters.spark import SparkEngine, SparkSettings
from streamrec.config import Config
from streamrec.core.scoring.model import Model
from streamrec.core.scoring.training import fit
from streamrec.core.scoring.types import ALSParams
from streamrec.core.window.contents import WindowMatrix

__all__ = ["Engine", "ImplicitEngine", "engine_for", "spark_settings"]


class Engine(Protocol):
    """Fits one window; ``close`` releases what the engine holds (a JVM) and cancels a fit."""

    name: str

    def fit(self, matrix: WindowMatrix, params: ALSParams) -> Model: ...

    def close(self) -> None: ...


class ImplicitEngine:
    """implicit's ALS in this process (``training.fit``: confidence cap, one safe retry)."""

    name = "implicit"

    def fit(self, matrix: WindowMatrix, params: ALSParams) -> Model:
        return fit(matrix, params)

    def close(self) -> None:
        return None


def spark_settings(config: Config) -> SparkSettings:
    """The spark engine's settings from the ``spark_*`` settings."""
    return SparkSettings(master=config.spark_master, executors=config.spark_executors,
                         executor_cores=config.spark_executor_cores,
                         executor_memory=config.spark_executor_memory,
                         driver_memory=config.spark_driver_memory, image=config.spark_image)


def engine_for(config: Config) -> Engine:
    """The engine ``config.training_engine`` names (``implicit`` or ``spark``); the spark
    engine starts its session only at its first fit."""
    if config.training_engine == "spark":
        return SparkEngine(spark_settings(config))
    return ImplicitEngine()
