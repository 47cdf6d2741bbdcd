"""Fitting: the one place that calls implicit.

implicit 0.7.3 reads its input matrix as the confidence C itself: for a stored value ``c`` it
adds ``c·y`` to the right-hand side and ``(c − 1)·y yᵀ`` to the system (``_least_squares``),
and its ``alpha`` only multiplies the matrix (``C = alpha·R``). We want Hu et al.'s
``C = 1 + alpha·R``, so we hand implicit ``1 + alpha·R`` and keep its own ``alpha`` at 1. The
fold-in in ``foldin.py`` uses the same confidence, so a refolded user agrees with implicit's
``recalculate_user`` on the same input.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from .model import Model
from .modeltypes import ALSParams, FitInfo, ModelError
from .window import WindowMatrix

__all__ = ["confidence_matrix", "fit_als"]

log = logging.getLogger(__name__)


def confidence_matrix(user_items: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """``1 + alpha * weight`` on the stored entries, float32, as implicit wants it."""
    conf = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    conf.data = (1.0 + alpha * conf.data.astype(np.float64)).astype(np.float32)
    return conf


def _estimator(params: ALSParams) -> tuple[Any, str]:
    import implicit.cpu.als
    import implicit.gpu

    if params.use_gpu:
        if implicit.gpu.HAS_CUDA:
            import implicit.gpu.als

            return implicit.gpu.als.AlternatingLeastSquares(
                factors=params.factors,
                regularization=params.regularization,
                alpha=1.0,
                iterations=params.iterations,
                random_state=params.random_state,
            ), "gpu"
        warnings.warn(
            "use_gpu is set but this implicit build has no CUDA support; fitting on the CPU",
            RuntimeWarning,
            stacklevel=3,
        )
    return implicit.cpu.als.AlternatingLeastSquares(
        factors=params.factors,
        regularization=params.regularization,
        alpha=1.0,
        dtype=np.float32,
        iterations=params.iterations,
        num_threads=params.num_threads,
        random_state=params.random_state,
    ), "cpu"


def fit_als(matrix: WindowMatrix, params: ALSParams) -> Model:
    """Fit implicit ALS on ``matrix`` and return a :class:`Model` of plain arrays.

    Raises ``ModelError`` for an empty window (there is nothing to factorise).
    """
    if matrix.user_items.nnz == 0:
        raise ModelError("cannot fit an empty window")
    conf = confidence_matrix(matrix.user_items, params.alpha)
    started = time.perf_counter()
    # implicit parallelises itself; a multi-threaded BLAS underneath it only thrashes.
    with threadpool_limits(1, "blas"):
        estimator, device = _estimator(params)
        estimator.fit(conf, show_progress=False)
        if device == "gpu":
            estimator = estimator.to_cpu()
        user_factors = np.ascontiguousarray(estimator.user_factors, dtype=np.float32)
        item_factors = np.ascontiguousarray(estimator.item_factors, dtype=np.float32)
        loss = _loss(conf, user_factors, item_factors, params)
    seconds = time.perf_counter() - started
    log.info(
        "fitted %d users x %d items (%d nnz) in %.2fs on %s, loss %s",
        conf.shape[0],
        conf.shape[1],
        conf.nnz,
        seconds,
        device,
        loss,
    )
    return Model(
        user_factors=user_factors,
        item_factors=item_factors,
        user_ids=matrix.user_ids,
        item_ids=matrix.item_ids,
        user_items=matrix.user_items,
        popularity=matrix.popularity,
        params=params,
        fit_info=FitInfo(seconds=seconds, loss=loss, device=device),
    )


def _loss(
    conf: sp.csr_matrix, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], params: ALSParams
) -> float | None:
    # implicit's own loss (weighted squared error + regularisation, normalised); one pass.
    from implicit.cpu import _als

    try:
        return float(
            _als.calculate_loss(conf, x, y, params.regularization, num_threads=params.num_threads)
        )
    except (AttributeError, TypeError, ValueError) as exc:  # private API: never fail a fit on it
        log.warning("could not compute the training loss: %s", exc)
        return None
