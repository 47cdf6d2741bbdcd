"""The spark training engine: Spark MLlib's ALS, with the trainer process as the driver.

The trainer keeps everything it decides (when to retrain, the window, the offsets, the
publication order); this module only turns one window matrix into factors on Spark:

1. the window's cells, aggregated exactly as the window aggregates them, one row each
   (``core/scoring/cells.py``: Spark does not merge duplicate rows), with the rating clipped
   so that Spark's confidence ``1 + alpha·|r|`` equals our capped one;
2. ``pyspark.ml.recommendation.ALS(implicitPrefs=True)`` on them (Hu, Koren & Volinsky 2008,
   with ALS-WR's λ·n⁺, Zhou et al. 2008);
3. the factors collected back in the window's user and item order, as a :class:`Model` whose
   ALS scorer records ``regularization_scaling = "positives"``, so serving's fold-in solves
   Spark's system (``foldin.py``). The snapshot is then written by the same writer as the
   implicit engine's.

pyspark is an optional dependency (``pip install 'streamrec[spark]'``); importing this module
does not import it. One ``SparkSession`` per engine, started at the first fit and kept for
the next ones (a session costs 10–13 s to start); :meth:`SparkEngine.close` cancels a running
fit and stops the JVM.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamrec.core.domains import MAX_CONFIDENCE
from streamrec.core.scoring.als import ALS
from streamrec.core.scoring.cells import RatingCells, rating_cells
from streamrec.core.scoring.foldin import POSITIVES
from streamrec.core.scoring.model import Model
from streamrec.core.scoring.types import ALSParams, FitFailed, FitInfo
from streamrec.core.window.contents import WindowMatrix

__all__ = ["SparkEngine", "SparkSettings", "SparkUnavailable", "missing"]

log = logging.getLogger(__name__)


class SparkUnavailable(RuntimeError):
    """pyspark is not installed, or its JVM could not start (no Java 17+ on the PATH)."""


def missing() -> str | None:
    """Why the spark engine cannot start here (no pyspark, no ``java``), or None."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        return "needs pyspark: pip install 'streamrec[spark]'"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and os.path.exists(
            os.path.join(java_home, "bin", "java"))):
        return "needs Java 17+: no java on the PATH or in JAVA_HOME"
    return None


@dataclass(frozen=True)
class SparkSettings:
    """Where and how big: ``master`` (``local[N]`` or ``k8s://https://HOST:PORT``), the
    executors (count, cores, heap such as ``2g``; ignored by a local master), the driver's
    heap and, on Kubernetes, the executor image."""

    master: str = "local[2]"
    executors: int = 2
    executor_cores: int = 1
    executor_memory: str = "2g"
    driver_memory: str = "1g"
    image: str | None = None
    app_name: str = "streamrec-trainer"

    @property
    def local(self) -> bool:
        return self.master.startswith("local")

    def conf(self) -> dict[str, str]:
        """The ``SparkConf`` entries of these settings."""
        out = {
            "spark.driver.memory": self.driver_memory,
            "spark.executor.memory": self.executor_memory,
            "spark.executor.cores": str(self.executor_cores),
            "spark.executor.instances": str(self.executors),
            # Columns in and factors out through Arrow, not row by row through pickle.
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
        }
        if self.local:  # nothing of a local engine listens beyond the loopback interface
            out |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                    "spark.sql.shuffle.partitions": "4",
                    # Shuffle and block files where TMPDIR says (the JVM's default is /tmp).
                    "spark.local.dir": tempfile.gettempdir()}
        if self.image:
            out["spark.kubernetes.container.image"] = self.image
        return out


class SparkEngine:
    """Fits ALS on Spark; safe to call from the trainer's one fit thread at a time."""

    name = "spark"

    def __init__(self, settings: SparkSettings) -> None:
        self.settings = settings
        self._session: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def session(self) -> Any:
        """The ``SparkSession``, started on first use. Raises ``SparkUnavailable``."""
        with self._lock:
            if self._closed:
                raise SparkUnavailable("the spark engine is closed")
            if self._session is None:
                try:
                    from pyspark.sql import SparkSession
                except ImportError as e:
                    raise SparkUnavailable(
                        "training_engine=spark needs pyspark: pip install 'streamrec[spark]'"
                    ) from e
                if self.settings.local:  # else Spark picks the host's outward address
                    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
                builder = SparkSession.builder.master(self.settings.master).appName(
                    self.settings.app_name)
                for key, value in self.settings.conf().items():
                    builder = builder.config(key, value)
                started = time.perf_counter()
                try:
                    self._session = builder.getOrCreate()
                except Exception as e:  # noqa: BLE001 (py4j raises plain Exceptions)
                    raise SparkUnavailable(f"the Spark session did not start: {e}") from e
                self._session.sparkContext.setLogLevel("WARN")
                log.info("spark session on %s started in %.1f s", self.settings.master,
                         time.perf_counter() - started)
            return self._session

    def close(self) -> None:
        """Cancel a running fit and stop the JVM; idempotent."""
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        if session is not None:
            try:
                session.sparkContext.cancelAllJobs()
            finally:
                session.stop()
                _end_gateway()

    def fit(self, matrix: WindowMatrix, params: ALSParams, cap: float = MAX_CONFIDENCE) -> Model:
        """Fit ``matrix`` (the window's users × items net weights) with Spark's implicit ALS.

        Returns a :class:`Model` like ``training.fit``'s (``fit.engine = "spark"``, ALS with
        ``regularization_scaling = "positives"``). Raises ``FitFailed`` with ``empty_window``,
        ``nonfinite_factors`` or ``solver_error`` (Spark's own failure, or the session closed
        mid-fit), and ``SparkUnavailable`` when pyspark or its JVM is missing.
        """
        if matrix.user_items.nnz == 0:
            raise FitFailed("empty_window", "cannot fit an empty window")
        cells = rating_cells(matrix.user_items, params.alpha, cap)
        spark = self.session()
        started = time.perf_counter()
        try:
            users, items = self._factorise(spark, cells, params, matrix.user_items.shape)
        except FitFailed:
            raise
        except Exception as e:  # noqa: BLE001 (Py4JJavaError, a stopped context...)
            raise FitFailed("solver_error", f"spark: {type(e).__name__}: {e}") from e
        seconds = time.perf_counter() - started
        log.info("spark fitted %d users x %d items (%d cells) in %.2fs on %s",
                 users.shape[0], items.shape[0], len(cells), seconds, self.settings.master)
        return Model(
            scorers={"als": ALS(users, items, params.regularization, params.alpha, cap,
                                regularization_scaling=POSITIVES)},
            user_ids=matrix.user_ids,
            item_ids=matrix.item_ids,
            user_items=matrix.user_items,
            popularity=matrix.popularity,
            params=params,
            fit_info=FitInfo(seconds=seconds, device=f"spark:{self.settings.master}",
                             capped_cells=cells.capped, confidence_cap=cap, engine="spark"),
        )

    def _factorise(self, spark: Any, cells: RatingCells, params: ALSParams,
                   shape: tuple[int, int]) -> tuple[npt.NDArray[np.float32],
                                                    npt.NDArray[np.float32]]:
        import pandas as pd
        from pyspark.ml.recommendation import ALS as SparkALS

        frame = pd.DataFrame({"user": cells.users, "item": cells.items, "rating": cells.ratings})
        blocks = max(1, int(spark.sparkContext.defaultParallelism))
        ratings = spark.createDataFrame(frame).repartition(blocks)
        estimator = SparkALS(
            rank=params.factors, maxIter=params.iterations, regParam=params.regularization,
            alpha=params.alpha, implicitPrefs=True, nonnegative=False,
            seed=params.random_state if params.random_state is not None else 0,
            userCol="user", itemCol="item", ratingCol="rating",
            numUserBlocks=blocks, numItemBlocks=blocks,
        )
        fitted = estimator.fit(ratings)
        users = _dense(fitted.userFactors, shape[0], params.factors, "user")
        items = _dense(fitted.itemFactors, shape[1], params.factors, "item")
        if not (np.isfinite(users).all() and np.isfinite(items).all()):
            raise FitFailed("nonfinite_factors", "the fitted factors hold NaN or infinity")
        return users, items


def _dense(factors: Any, rows: int, rank: int, what: str) -> npt.NDArray[np.float32]:
    """Spark's ``(id, features)`` factor frame as a float32 ``(rows, rank)`` array by id; a
    row Spark did not return (no cells) stays 0, as implicit leaves such a row."""
    frame = factors.toPandas()
    out = np.zeros((rows, rank), dtype=np.float32)
    if len(frame):
        ids = frame["id"].to_numpy(dtype=np.int64)
        if ids.min() < 0 or ids.max() >= rows:
            raise FitFailed("solver_error", f"spark returned {what} ids outside 0..{rows - 1}")
        out[ids] = np.stack(frame["features"].to_numpy()).astype(np.float32)
    return out


def _end_gateway(timeout: float = 30.0) -> None:
    """End the JVM that pyspark launched for this process (its py4j gateway).

    ``SparkSession.stop()`` stops the SparkContext but keeps that JVM until the Python
    process exits: the JVM ends on EOF on its stdin (pyspark's ``launch_gateway``). Closing
    its stdin ends it now; a JVM still running after ``timeout`` seconds is killed. The next
    session in this process launches a fresh gateway.
    """
    import subprocess

    from pyspark import SparkContext

    with SparkContext._lock:
        gateway = SparkContext._gateway
        SparkContext._gateway = None
        SparkContext._jvm = None
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    if proc is None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("the Spark JVM (pid %d) outlived %.0f s after EOF: killed", proc.pid, timeout)
        proc.kill()
        proc.wait(timeout)
