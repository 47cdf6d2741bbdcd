"""``streamrec evaluate``: prequential evaluation of recommendation quality on an event stream.

A thin edge: parse flags, load the stream (MovieLens-100K through ``streamrec.data.movielens``,
or the synthetic generator), build the strategy grid, replay, write the report. Evaluation
settings are flags of this tool, not service configuration, so they are not ``Config`` fields.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamrec.config import ConfigError, in_range
from streamrec.core.domains import MAX_WEIGHT, Range
from streamrec.core.events.event import Event
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.model import ALSParams
from streamrec.settings import BY_NAME
from streamrec.settings.kinds import Num

from .prequential import PARTS, Protocol, in_time_order, replay
from .report import markdown_table, write_report
from .suite import Grid, IsgdParams, build
from .synthetic import SyntheticSpec, generate

__all__ = ["add_arguments", "run"]

QUICK_EVENTS = 10_000


def _list(conv: Callable[[str], float], minimum: float, maximum: float, what: str) -> Any:
    """An argparse type: comma-separated ``conv`` values in [``minimum``, ``maximum``], no
    empty entry (argparse's message names the flag)."""

    def parse(raw: str) -> list[Any]:
        entries = raw.split(",")
        if any(not e.strip() for e in entries):
            raise argparse.ArgumentTypeError(f"empty entry in {raw!r}")
        try:
            values = [conv(e) for e in entries]
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a list of {what}") from e
        if not all(math.isfinite(v) and minimum <= v <= maximum for v in values):
            bound = f"in [{minimum:g}, {maximum:g}]" if math.isfinite(maximum) else \
                f">= {minimum:g}"
            raise argparse.ArgumentTypeError(f"needs {what} {bound}, got {raw!r}")
        return values

    return parse


def _ints() -> Any:
    return _list(int, 1, math.inf, "integers")


def _floats(maximum: float = math.inf) -> Any:
    return _list(float, 0.0, maximum, "numbers")


_SCORING = ScoringParams()
_ITEM_ITEM = ItemItemParams()


def _domain(name: str) -> Range:
    """The trainer's domain of a setting (its row in ``streamrec.settings``)."""
    kind = BY_NAME[name].kind
    assert isinstance(kind, Num)
    return kind.domain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--dataset", choices=("ml-100k", "synthetic"), default="ml-100k")
    a("--events", type=in_range(Range(1, 100_000_000, integer=True)), default=None,
      help="use only the first EVENTS events (synthetic: how many to generate, default 100000)")
    a("--retrain-every", type=_ints(), default=None,
      help="comma-separated retrain periods N in events (default 1000,5000,20000)")
    a("--window", type=_ints(), default=None,
      help="comma-separated window sizes W in events (default 25000,100000)")
    # The trainer's domains for the ALS hyperparameters (the settings table); argparse exits 2.
    for name, default in (("factors", 32), ("iterations", 8), ("regularization", 0.05),
                          ("alpha", 1.0)):
        a(f"--{name}", type=in_range(_domain(name)), default=default,
          help=f"default {default}; range {_domain(name).text()}")
    a("--isgd-factors", type=in_range(_domain("factors")), default=32)
    a("--isgd-learn-rate", type=in_range(Range(0.0, 10.0, open_low=True)), default=0.05)
    a("--isgd-regularization", type=in_range(Range(0.0, 1e6)), default=0.01)
    a("--k", type=in_range(Range(1, 1000, integer=True)), default=10,
      help="list length (recall@k, nDCG@k, MRR@k), 1..1000")
    a("--positive", type=in_range(Range(0.0, MAX_WEIGHT, open_low=True)), default=4.0,
      help="an event is a test case if weight >= this")
    a("--warmup", type=in_range(Range(0.0, 0.99)), default=0.2,
      help="share of the stream only learned, [0, 0.99]")
    a("--sample", type=in_range(Range(0.0, 1.0, open_low=True)), default=1.0,
      help="share of positive test events scored, (0, 1]")
    a("--seed", type=in_range(Range(0, 2**32 - 1, integer=True)), default=0)
    a("--recency-decay", type=_floats(), default=None,
      help="comma-separated recency decays per event of the scored views "
           f"(default 0,{_SCORING.recency_decay:g}; see docs/evaluation.md)")
    a("--item-item-weight", type=_floats(1.0), default=None,
      help="comma-separated blend weights β of the item-item model in the scored views "
           f"(0: ALS alone, 1: item-item alone; default 0,1,{_SCORING.item_item_weight:g})")
    a("--sequential-weight", type=_floats(1.0), default=None,
      help="comma-separated blend weights σ of the sequential scorer in the scored views "
           "(default 0, plus the service's default scoring, σ="
           f"{_SCORING.sequential_weight:g}, as one more view)")
    a("--recency-half-life", type=in_range(Range(1.0, 1e9)),
      default=_SCORING.recency_half_life,
      help="seconds; time-based recency of the scored views (default off)")
    a("--history-cap", type=in_range(Range(1, 100_000, integer=True)),
      default=_SCORING.history_cap)
    a("--item-item-l2", type=in_range(Range(0.0, 1e9, open_low=True)), default=_ITEM_ITEM.l2,
      help="EASE's λ")
    a("--item-item-max-dense", type=in_range(Range(0, 100_000, integer=True)),
      default=_ITEM_ITEM.max_dense_items)
    a("--scored-retrain-every", type=_ints(), default=None,
      help="retrain periods N that get the scored views (default 5000; quick: 2000)")
    a("--part", choices=PARTS, default="all",
      help="score all test events, the first half (validation) or the second half (test)")
    a("--engine", choices=("implicit", "spark"), default="implicit",
      help="training engine of the ALS learners (spark: pyspark, docs/spark.md)")
    a("--spark-master", default="local[2]", help="Spark master of --engine spark")
    a("--out", type=Path, default=Path("bench/results"), help="report directory")
    a("--name", default="quality", help="report file stem")
    a("--no-plots", action="store_true")
    a("--quick", action="store_true",
      help=f"tiny run: first {QUICK_EVENTS} events, N=500,2000, W=5000, 16 factors")


def _load(args: argparse.Namespace) -> tuple[list[Event], dict[str, Any]]:
    if args.dataset == "synthetic":
        spec = SyntheticSpec(events=args.events or 100_000, seed=args.seed)
        return generate(spec), {"name": "synthetic", "spec": spec.__dict__}
    from streamrec.data.movielens import load

    ratings, _ = load()
    events = [Event(r.user, r.item, r.rating, r.timestamp) for r in ratings]
    return events, {"name": "MovieLens-100K", "source": "recbole wheel, ml-100k.inter",
                    "weight": "rating 1-5"}


def _settings(args: argparse.Namespace) -> tuple[Grid, Protocol]:
    quick = args.quick
    if args.events is not None and args.events < 1:
        raise ConfigError("events", f"must be >= 1, got {args.events}")
    try:
        als = ALSParams(factors=16 if quick else args.factors,
                        iterations=4 if quick else args.iterations,
                        regularization=args.regularization, alpha=args.alpha)
        decays = args.recency_decay or [0.0, _SCORING.recency_decay]
        weights = args.item_item_weight or [0.0, 1.0, _SCORING.item_item_weight]
        sigmas = args.sequential_weight or [0.0]
        scorings = [
            ScoringParams(d, args.recency_half_life, args.history_cap, b, s)
            for d in dict.fromkeys(decays) for b in dict.fromkeys(weights)
            for s in dict.fromkeys(sigmas)
            # (0, 0, 0) is plain fold-in
            if d > 0 or b > 0 or s > 0 or args.recency_half_life is not None
        ]
        default = ScoringParams(recency_half_life=args.recency_half_life,
                                history_cap=args.history_cap)
        if args.sequential_weight is None and default not in scorings:
            scorings.append(default)  # what `streamrec run` serves
        grid = Grid(
            retrain_every=args.retrain_every or ([500, 2000] if quick else [1000, 5000, 20000]),
            windows=args.window or ([5000] if quick else [25000, 100000]),
            als=als,
            isgd=IsgdParams(args.isgd_factors, args.isgd_learn_rate, args.isgd_regularization,
                            args.seed),
            scorings=scorings,
            item_item=ItemItemParams(l2=args.item_item_l2,
                                     max_dense_items=args.item_item_max_dense),
            scored_retrain_every=args.scored_retrain_every or ([2000] if quick else [5000]),
        )
        protocol = Protocol(k=args.k, positive=args.positive, warmup=args.warmup,
                            sample=args.sample, seed=args.seed, part=args.part)
    except ValueError as e:
        raise ConfigError("evaluation settings", str(e)) from e
    return grid, protocol


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    grid, protocol = _settings(args)
    started = time.perf_counter()
    try:
        events, dataset = _load(args)
    except (RuntimeError, OSError) as e:  # DatasetError is a RuntimeError
        print(f"streamrec evaluate: cannot load {args.dataset}: {e}", file=sys.stderr)
        return 1
    events = in_time_order(events)
    limit = QUICK_EVENTS if args.quick and not args.events else args.events
    if limit:
        events = events[:limit]
    engine = None
    if args.engine == "spark":
        from streamrec.adapters.spark import SparkEngine, SparkSettings

        engine = SparkEngine(SparkSettings(master=args.spark_master))
    strategies = build(grid, protocol.positive, None if engine is None else engine.fit,
                       args.engine)
    print(f"replaying {len(events)} events through {len(strategies)} strategies", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        print(f"  {done}/{total} test events, {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)

    try:
        result = replay(events, strategies, protocol, progress)
    finally:
        if engine is not None:
            engine.close()
    report = {
        "engine": args.engine,
        "benchmark": "prequential recommendation quality",
        "dataset": dataset,
        "quick": bool(args.quick),
        "als": grid.als.to_dict(),
        "isgd": grid.isgd.__dict__,
        "grid": {"retrain_every": list(grid.retrain_every), "windows": list(grid.windows),
                 "scored_retrain_every": list(grid.scored_retrain_every)},
        "item_item": grid.item_item.to_dict(),
        "result": result.to_dict(),
        "seconds": round(time.perf_counter() - started, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    paths = write_report(report, args.out, args.name, plots=not args.no_plots)
    print(markdown_table(report), end="")
    print(f"({report['seconds']} s; wrote {', '.join(str(p) for p in paths)})")
    return 0
