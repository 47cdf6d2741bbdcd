"""Dump every scorer's standardised scores per test case, so blends can be searched offline.

The same test-then-train replay as ``sr_replay.py`` (ML-100K in time order, 20% warm-up, test
cases the ratings >= 4 of known users, ALS with the service's defaults retrained every 5,000
events, the item-item model and SR fitted at every retrain), but instead of ranking one blend
per view it writes, for every test case, each *component* score vector standardised (``s /
σ(s)``, as ``blend.blend`` does) in the global item space of the data set (items the model
does not know: -1e4) to ``OUT/<proto>/<component>.f32`` (float32, ``(cases, items)``), with
the seen items, the target and the case's half in ``meta.npz``. ``lab_blend.py`` then ranks
any weighted sum of components in seconds.

    python bench/results/sequential-tuning/lab_dump.py unit [components...]

Components: ``als@d``, ``ease@d`` (recency decay ``d``), ``sr`` (the product's SR), SR
variants (``sr_*``, see ``SR_VARIANTS``), session-kNN variants (``sknn_*``), ``trend_K`` (the
popularity of the window's last K events).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from streamrec.config import Config  # noqa: E402
from streamrec.core.events.event import Event  # noqa: E402
from streamrec.core.events.feedback import aggregate  # noqa: E402
from streamrec.core.scoring.blend import ScoringParams  # noqa: E402
from streamrec.core.scoring.itemitem import sparse_row_sum  # noqa: E402
from streamrec.core.scoring.sequential import SequentialParams, _top_per_row  # noqa: E402
from streamrec.evaluation.prequential import in_time_order  # noqa: E402
from streamrec.evaluation.strategies import RetrainedALS  # noqa: E402

OUT = Path(os.environ.get("LAB_OUT", "/tmp/lab27"))
LOW = np.float32(-1e4)


def transitions(hist, items, steps, successors, dist="inv", pop_norm=0.0, row_norm=False,
                backward=False, both=0.0):
    """SR counts like ``sequential.transitions`` with variants: distance weighting ``inv``
    (1/d), ``inv2`` (1/d²), ``flat`` (1), ``exp`` (0.5^(d-1)); ``backward``: predecessor
    counts; ``pop_norm``: divide column j by count(j)^a; ``row_norm``: rows sum to 1."""
    indptr = np.asarray(hist.indptr, dtype=np.int64)
    user = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    seq = np.asarray(hist.items, dtype=np.int32)
    rows, cols, vals = [], [], []
    for d in range(1, steps + 1):
        a, b = seq[:-d], seq[d:]
        ok = (user[:-d] == user[d:]) & (a != b)
        if backward:
            a, b = b, a
        w = {"inv": 1.0 / d, "inv2": 1.0 / d / d, "flat": 1.0, "exp": 0.5 ** (d - 1)}[dist]
        rows.append(a[ok])
        cols.append(b[ok])
        vals.append(np.full(int(ok.sum()), w, dtype=np.float32))
        if both:  # the predecessors too, weighted ``both``
            rows.append(b[ok])
            cols.append(a[ok])
            vals.append(np.full(int(ok.sum()), both * w, dtype=np.float32))
    coo = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(items, items), dtype=np.float32)
    m = coo.tocsr()
    if pop_norm:
        count = np.bincount(seq, minlength=items).astype(np.float32)
        m = sp.csr_matrix(m @ sp.diags(1.0 / np.maximum(count, 1) ** pop_norm))
    m = _top_per_row(sp.csr_matrix(m, dtype=np.float32), successors)
    if row_norm:
        s = np.asarray(m.sum(axis=1)).ravel()
        m = sp.csr_matrix(sp.diags(1.0 / np.maximum(s, 1e-9)) @ m, dtype=np.float32)
    return m


# name -> (transition kwargs, query: (items, weighting))
SR_VARIANTS = {
    "sr": (dict(steps=10, successors=100), (20, "inv")),
    "sr_q_exp3": (dict(steps=10, successors=100), (20, "exp0.3")),
    "sr_q_sqrt": (dict(steps=10, successors=100), (20, "sqrt")),
    "sr_q_inv2": (dict(steps=10, successors=100), (20, "inv2")),
    "sr_d_inv2": (dict(steps=10, successors=100, dist="inv2"), (20, "inv")),
    "sr_d_flat": (dict(steps=10, successors=100, dist="flat"), (20, "inv")),
    "sr_pop5": (dict(steps=10, successors=100, pop_norm=0.5), (20, "inv")),
    "sr_rown": (dict(steps=10, successors=100, row_norm=True), (20, "inv")),
    "sr_back": (dict(steps=10, successors=100, backward=True), (20, "inv")),
    "sr_s50": (dict(steps=10, successors=50), (20, "inv")),
    "sr_s300": (dict(steps=10, successors=300), (20, "inv")),
    "sr_b2": (dict(steps=10, successors=100, both=0.2), (20, "inv")),
    "sr_b35": (dict(steps=10, successors=100, both=0.35), (20, "inv")),
    "sr_b5": (dict(steps=10, successors=100, both=0.5), (20, "inv")),
    "sr_b35_qexp3": (dict(steps=10, successors=100, both=0.35), (20, "exp0.3")),
    "sr_b35_s200": (dict(steps=10, successors=200, both=0.35), (20, "inv")),
    "sr_q_exp2": (dict(steps=10, successors=100), (20, "exp0.2")),
    "sr_q_exp5": (dict(steps=10, successors=100), (20, "exp0.5")),
    "sr_q_exp3_s300": (dict(steps=10, successors=300), (20, "exp0.3")),
}


# forward + g x predecessors, each its own top-100 matrix; query exp(-qd (p - 1))
SEPARATE = {"sep35_qexp3": (0.35, 0.3), "sep25_qexp3": (0.25, 0.3), "sep5_qexp3": (0.5, 0.3)}


def qweights(n, how):
    p = np.arange(1, n + 1, dtype=np.float64)
    if how == "inv":
        w = 1.0 / p
    elif how == "inv2":
        w = 1.0 / p / p
    elif how == "sqrt":
        w = 1.0 / np.sqrt(p)
    elif how.startswith("exp"):
        w = np.exp(-float(how[3:]) * (p - 1))
    elif how == "lin":
        w = np.maximum(1.0 - (p - 1) / n, 0.0)
    else:
        raise ValueError(how)
    return w.astype(np.float32)


def newest_distinct(order, n):
    seq = np.asarray(order, dtype=np.intp)[::-1]
    _, first = np.unique(seq, return_index=True)
    return seq[np.sort(first)][:n]


# session-kNN: name -> (query items m, query weighting, neighbours k, similarity normalisation)
SKNN_VARIANTS = {
    "sknn_m10_k50": (10, "lin", 50, "none"),
    "sknn_m20_k100": (20, "lin", 100, "none"),
    "sknn_m10_k100_cos": (10, "lin", 100, "cos"),
    "sknn_m20_k200_cos": (20, "inv", 200, "cos"),
    "sknn_m50_k100_cos": (50, "lin", 100, "cos"),
    "sknn_m5_k50": (5, "lin", 50, "none"),
    "sknn_m10_k20": (10, "lin", 20, "none"),
    "sknn_m10_k30_inv": (10, "inv", 30, "none"),
    "sknn_m5_k20": (5, "lin", 20, "none"),
    "sknn_m10_k50_inv": (10, "inv", 50, "none"),
}


class Fitted:
    """What the lab fits at each retrain beside the product's scorers."""

    def __init__(self, model, names, gmap):
        self.model = model
        self.gmap = gmap  # model item index -> global index
        hist = model.history
        n_items = len(model.item_ids)
        self.sr = {}
        for name in names:
            if name in SR_VARIANTS:
                self.sr[name] = transitions(hist, n_items, **SR_VARIANTS[name][0])
        if any(n in SEPARATE for n in names):
            self.fwd = transitions(hist, n_items, 10, 100)
            self.bwd = transitions(hist, n_items, 10, 100, backward=True)
        if any(n.startswith("sknn") for n in names):
            indptr = np.asarray(hist.indptr, dtype=np.int64)
            users = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            ui = sp.csr_matrix((np.ones(len(users), np.float32),
                                (users, np.asarray(hist.items))),
                               shape=(len(indptr) - 1, n_items))
            ui.data[:] = 1.0  # duplicates summed: binary again
            self.ui = ui
            self.iu = sp.csr_matrix(ui.T)
            self.ulen = np.maximum(np.diff(ui.indptr), 1).astype(np.float32)
        self.trend = {}
        for name in names:
            if name.startswith("trend_"):
                k = int(name.split("_")[1])
                self.trend[name] = None  # filled from the window by the caller
        self.k = k if self.trend else 0


def sknn(f: Fitted, row, order, spec):
    m, how, k, norm = spec
    q = newest_distinct(order, m)
    if not len(q):
        return np.zeros(f.ui.shape[1], np.float32)
    sim = sparse_row_sum(f.iu, q, qweights(len(q), how))
    if row is not None:
        sim[row] = 0.0
    if norm == "cos":
        sim = sim / np.sqrt(f.ulen) / np.sqrt(len(q))
    k = min(k, int(np.count_nonzero(sim)))
    if k == 0:
        return np.zeros(f.ui.shape[1], np.float32)
    top = np.argpartition(-sim, k - 1)[:k]
    return sparse_row_sum(f.ui, top.astype(np.intp), sim[top].astype(np.float32))


def std(s):
    s = np.asarray(s, dtype=np.float32)
    sigma = float(np.std(s))
    return s / np.float32(sigma) if sigma > 0 and np.isfinite(sigma) else s


def main() -> None:
    proto = sys.argv[1]
    names = sys.argv[2:]
    cfg = Config()
    if proto == "synthetic":
        from streamrec.evaluation.synthetic import SyntheticSpec, generate

        events = in_time_order(generate(SyntheticSpec(events=100_000, seed=0)))
        rnd = random.Random(0)
        target = [e.weight >= 4 and rnd.random() < 0.5 for e in events]
    else:
        from streamrec.data.movielens import load

        ratings, _ = load()
        events = in_time_order([Event(r.user, r.item, r.rating, r.timestamp) for r in ratings])
        target = [e.weight >= 4 for e in events]
        if proto == "unit":
            events = [Event(e.user, e.item, 1.0, None) for e in events]
    all_items = sorted({e.item for e in events})
    gidx = {it: i for i, it in enumerate(all_items)}
    n_global = len(all_items)
    core = RetrainedALS(cfg.als, int(os.environ.get("N", 5000)), cfg.window_size,
                        {"item_item": cfg.item_item, "sequential": SequentialParams()},
                        cfg.history_cap)
    warm = int(len(events) * 0.2)
    core.warm(events[:warm])
    seen_users = {e.user for e in events[:warm]}
    test = [i for i in range(warm, len(events)) if target[i]]
    half = test[len(test) // 2]
    cases = [i for i in test]  # every target; a case of an unknown user is marked invalid
    out = OUT / proto
    out.mkdir(parents=True, exist_ok=True)
    files = {n: np.lib.format.open_memmap(out / f"{n}.npy", mode="w+", dtype=np.float32,
                                          shape=(len(cases), n_global)) for n in names}
    seen_ptr, seen_idx, tgt, part, valid = [0], [], [], [], []
    fitted: Fitted | None = None
    fitted_for = None
    c = 0
    started = time.time()
    params = {d: ScoringParams(recency_decay=d, history_cap=cfg.history_cap)
              for d in {float(n.split("@")[1]) for n in names if "@" in n}}
    for i in range(warm, len(events)):
        e = events[i]
        if target[i]:
            model = core.model
            ok = e.user in seen_users and model is not None
            valid.append(ok)
            part.append(0 if i < half else 1)
            tgt.append(gidx[e.item])
            if ok:
                if fitted_for is not model:
                    gmap = np.fromiter((gidx[it] for it in model.item_ids), dtype=np.intp,
                                       count=len(model.item_ids))
                    fitted = Fitted(model, names, gmap)
                    if fitted.k:
                        recent = core.window.contents()
                        its = np.asarray(recent.items)[-fitted.k:]
                        cnt = np.bincount(its, minlength=len(recent.item_ids)).astype(np.float32)
                        tv = np.zeros(len(model.item_ids), np.float32)
                        for j, it in enumerate(recent.item_ids):
                            r = model.item_ids.get(it)
                            if r is not None and j < len(cnt):
                                tv[r] = cnt[j]
                        for n in fitted.trend:
                            fitted.trend[n] = tv  # one K per run (the first)
                    fitted_for = model
                assert fitted is not None
                row, fresh = model._row(e.user), model.fresh_rows(core.since.get(e.user))
                seen, _ = model._items_of(row, fresh)
                seen_idx.append(fitted.gmap[seen])
                order_cache = None
                for n in names:
                    if "@" in n:
                        kind, d = n.split("@")
                        h_items, h_w = model._weighted_history(row, fresh, params[float(d)])
                        idx, w = aggregate(h_items, h_w)
                        s = model.scorers["als" if kind == "als" else "item_item"].scores(idx, w)
                    else:
                        if order_cache is None:
                            order_cache = np.asarray(model._weighted_history(
                                row, fresh, ScoringParams(history_cap=cfg.history_cap))[0],
                                dtype=np.intp)
                        order = order_cache
                        if n in SEPARATE:  # forward and predecessor matrices pruned apart
                            g, qd = SEPARATE[n]
                            q = newest_distinct(order, 20)
                            qw = qweights(len(q), f"exp{qd}")
                            s = (sparse_row_sum(fitted.fwd, q, qw)
                                 + np.float32(g) * sparse_row_sum(fitted.bwd, q, qw))
                        elif n in SR_VARIANTS:
                            qn, how = SR_VARIANTS[n][1]
                            q = newest_distinct(order, qn)
                            s = sparse_row_sum(fitted.sr[n], q, qweights(len(q), how))
                        elif n in SKNN_VARIANTS:
                            s = sknn(fitted, row, order, SKNN_VARIANTS[n])
                        elif n in fitted.trend:
                            s = fitted.trend[n]
                        else:
                            raise KeyError(n)
                    v = np.full(n_global, LOW, np.float32)
                    v[fitted.gmap] = std(s)
                    files[n][c] = v
            else:
                seen_idx.append(np.empty(0, np.intp))
            seen_ptr.append(seen_ptr[-1] + len(seen_idx[-1]))
            c += 1
        seen_users.add(e.user)
        core.learn(e)
    for f in files.values():
        f.flush()
    np.savez(out / "meta.npz", seen_ptr=np.asarray(seen_ptr), seen=np.concatenate(seen_idx),
             target=np.asarray(tgt), part=np.asarray(part), valid=np.asarray(valid))
    print(f"{proto}: {c} cases ({sum(valid)} valid) {names} {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
