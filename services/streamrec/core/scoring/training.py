"""Fitting: the one place that calls implicit.

implicit 0.7.3 reads its input matrix as the confidence C itself: for a stored value ``c`` it
adds ``c·y`` to the right-hand side and ``(c − 1)·y yᵀ`` to the system (``_least_squares``),
a negative ``c`` meaning preference 0 with confidence ``|c|`` (negative feedback), and its
``alpha`` only multiplies the matrix (``C = alpha·R``). We want Hu et al.'s
``C = 1 + alpha·R``, so we hand implicit ``1 + alpha·R`` and keep its own ``alpha`` at 1. The
fold-in in ``foldin.py`` uses the same confidence, so a refolded user agrees with implicit's
``recalculate_user`` on the same input.

Confidence is capped at ``domains.MAX_CONFIDENCE`` per cell, here and in the fold-in alike:
implicit's float32 conjugate-gradient solver stays finite far above the cap (measured up to
1e8-1e10, see docs/core.md) and fails from about 1e12. Should a fit still produce non-finite
factors, it is retried once at once with the confidence capped at :data:`SAFE_CONFIDENCE` and
another seed; the snapshot then says so (``fit.recovered_from``). A window is never unfittable
for longer than one attempt, whatever it holds.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ..domains import MAX_CONFIDENCE
from ..window.sliding import WindowContents, WindowMatrix
from .als import ALS
from .ann import AnnParams, ItemIndex
from .blend import ScoringParams, history_for
from .foldin import signed_confidence
from .model import Model
from .scorer import window_fit
from .types import ALSParams, FitFailed, FitInfo

__all__ = ["SAFE_CONFIDENCE", "confidence_matrix", "fit", "with_ann", "with_scorer",
           "with_scoring"]

log = logging.getLogger(__name__)

#: The confidence cap of the one retry after a fit with non-finite factors.
SAFE_CONFIDENCE = 1e3


def confidence_matrix(
    user_items: sp.csr_matrix, alpha: float, cap: float = MAX_CONFIDENCE
) -> sp.csr_matrix:
    """``min(1 + alpha * |weight|, cap)`` on the stored entries, negated for negative
    feedback (net weight <= 0: preference 0, see ``foldin.py``), float32, as implicit wants it.
    """
    conf = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    conf.data = signed_confidence(conf.data, alpha, cap).astype(np.float32)
    return conf


def _capped(conf: sp.csr_matrix, cap: float) -> int:
    return int(np.count_nonzero(np.abs(conf.data) >= np.float32(cap)))


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


def _factorise(
    conf: sp.csr_matrix, params: ALSParams
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], str]:
    """implicit's fit; ``FitFailed`` unless both factor matrices come out finite."""
    from implicit.recommender_base import ModelFitError

    # implicit parallelises itself; a multi-threaded BLAS underneath it only thrashes.
    with threadpool_limits(1, "blas"):
        estimator, device = _estimator(params)
        try:
            estimator.fit(conf, show_progress=False)
        except (ModelFitError, ValueError, ArithmeticError) as exc:
            text = str(exc)
            reason = "nonfinite_factors" if "NaN" in text else "solver_error"
            raise FitFailed(reason, f"{type(exc).__name__}: {text}") from exc
        if device == "gpu":
            estimator = estimator.to_cpu()
        user_factors = np.ascontiguousarray(estimator.user_factors, dtype=np.float32)
        item_factors = np.ascontiguousarray(estimator.item_factors, dtype=np.float32)
    if not (np.isfinite(user_factors).all() and np.isfinite(item_factors).all()):
        raise FitFailed("nonfinite_factors", "the fitted factors hold NaN or infinity")
    return user_factors, item_factors, device


def fit(matrix: WindowMatrix, params: ALSParams, cap: float = MAX_CONFIDENCE) -> Model:
    """Fit implicit ALS on ``matrix`` and return a :class:`Model` of plain arrays, with ALS
    as its one scorer and the plain scoring (``blend.PLAIN``): see :func:`with_scoring` and
    :func:`with_scorer` for the rest of what the trainer fits.

    ``cap`` is the per-cell confidence cap of the first attempt (the retry uses
    :data:`SAFE_CONFIDENCE`); only tests raise it, to see a first attempt fail.

    Raises ``FitFailed`` (a ``ModelError``) with reason ``empty_window`` for an empty window
    (there is nothing to factorise), or with the reason of the retry when both the fit and its
    retry at :data:`SAFE_CONFIDENCE` fail.
    """
    if matrix.user_items.nnz == 0:
        raise FitFailed("empty_window", "cannot fit an empty window")
    recovered_from = None
    conf = confidence_matrix(matrix.user_items, params.alpha, cap)
    started = time.perf_counter()
    try:
        user_factors, item_factors, device = _factorise(conf, params)
    except FitFailed as first:
        log.warning("%s; refitting once with confidence capped at %g", first, SAFE_CONFIDENCE)
        cap, recovered_from = SAFE_CONFIDENCE, str(first)
        conf = confidence_matrix(matrix.user_items, params.alpha, cap)
        retry = replace(params, random_state=(params.random_state or 0) + 1)
        user_factors, item_factors, device = _factorise(conf, retry)
    with threadpool_limits(1, "blas"):
        loss = _loss(conf, user_factors, item_factors, params)
    seconds = time.perf_counter() - started
    capped = _capped(conf, cap)
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
        scorers={"als": ALS(user_factors, item_factors, params.regularization, params.alpha,
                            cap)},
        user_ids=matrix.user_ids,
        item_ids=matrix.item_ids,
        user_items=matrix.user_items,
        popularity=matrix.popularity,
        params=params,
        fit_info=FitInfo(seconds=seconds, loss=loss, device=device, capped_cells=capped,
                         confidence_cap=cap, recovered_from=recovered_from),
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


def with_scoring(model: Model, contents: WindowContents, scoring: ScoringParams) -> Model:
    """``model`` with its ordered history from the window ``contents`` (the newest
    ``scoring.history_cap`` events per user, for recency) and ``scoring``."""
    history = history_for(contents, model.user_ids, model.item_ids, scoring.history_cap)
    return model.derive(history=history, scoring=scoring)


def with_scorer(model: Model, name: str, params: Any = None, threads: int = 0) -> Model:
    """``model`` with the registered scorer ``name`` fitted on its window matrix and ordered
    history by the scorer's ``from_window`` (``scorer.WindowFitted``); ``params`` ``None``:
    its params class's defaults. Raises ``KeyError``/``TypeError`` for a name the registry
    cannot fit and what the fit raises (``ValueError``, ``ArithmeticError``, ``MemoryError``,
    ``numpy.linalg.LinAlgError``)."""
    cls = window_fit(name)
    p = cls.params_type() if params is None else params
    scorer = cls.from_window(model.user_items, model.user_ids, model.item_ids, p, threads,
                             model.history)
    return model.derive(scorers={name: scorer})


def with_ann(model: Model, params: AnnParams, threads: int = 0) -> Model:
    """``model`` with the HNSW graph over its ALS item factors (``ann.py``) when its catalogue
    has at least ``params.min_items`` items; ``model`` itself otherwise. ``threads`` bounds
    the build's threads (0: faiss's default). Raises what faiss raises (``RuntimeError``,
    ``MemoryError``)."""
    if not params.wanted(model.als.items):
        return model
    index = ItemIndex.build(model.als.item_factors, params, threads or None)
    return model.derive(scorers={"als": model.als.with_ann(index)})
