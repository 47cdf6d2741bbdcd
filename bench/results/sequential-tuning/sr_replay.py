"""The offline replay behind docs/evaluation.md's "The sequential scorer" (issue 27).

Test-then-train over MovieLens-100K in time order (20% warm-up; test cases: ratings >= 4 from
a known user, asked before the event is learned, seen items excluded), one ALS learner with the
default settings (64 factors, 15 iterations, window 1M events, history cap 200) retrained every
``N`` events (default 5,000, about what `streamrec run`'s 5-second retrains give), with the
item-item model and the sequential scorer fitted at every retrain; one scored view per blend.

Protocols: ``rated`` posts the rating as the weight and the original timestamp; ``unit`` posts
weight 1 and no timestamp (a click stream; the test cases stay the ratings >= 4);
``synthetic`` is `streamrec evaluate --dataset synthetic --events 100000 --sample 0.5`'s
stream. Prints recall@10 on the validation half, the test half and all.

    python bench/results/sequential-tuning/sr_replay.py unit \\
        '[["label", {"als": 0.5, "item_item": 0.5, "sequential": 0.35}, 0.1]]' \\
        '{"steps": 10, "query_items": 20}'

(each view: [label, blend table, recency decay]; the third argument: SequentialParams.)
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from streamrec.config import Config  # noqa: E402
from streamrec.core.events.event import Event  # noqa: E402
from streamrec.core.scoring.blend import ScoringParams  # noqa: E402
from streamrec.core.scoring.sequential import SequentialParams  # noqa: E402
from streamrec.evaluation.prequential import in_time_order  # noqa: E402
from streamrec.evaluation.strategies import RetrainedALS  # noqa: E402


def main() -> None:
    proto = sys.argv[1]
    tables = json.loads(sys.argv[2])
    seqp = SequentialParams(**json.loads(sys.argv[3])) if len(sys.argv) > 3 else SequentialParams()
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
    core = RetrainedALS(cfg.als, int(os.environ.get("N", 5000)), cfg.window_size,
                        {"item_item": cfg.item_item, "sequential": seqp}, cfg.history_cap)
    scorings = [(label, ScoringParams(recency_decay=decay, history_cap=cfg.history_cap,
                                      scorer_weights=tuple(table.items())))
                for label, table, decay in tables]
    warm = int(len(events) * 0.2)
    core.warm(events[:warm])
    seen_users = {e.user for e in events[:warm]}
    test = [i for i in range(warm, len(events)) if target[i]]
    half = test[len(test) // 2] if test else len(events)
    hits = {label: [0, 0] for label, _ in scorings}  # validation, test
    n = [0, 0]
    started = time.time()
    for i in range(warm, len(events)):
        e = events[i]
        if target[i] and e.user in seen_users and core.model is not None:
            part = 0 if i < half else 1
            n[part] += 1
            recent = core.since.get(e.user)
            for label, scoring in scorings:
                items = core.model.recommend(e.user, 10, extra=recent or None,
                                             scoring=scoring).items
                hits[label][part] += e.item in items
        seen_users.add(e.user)
        core.learn(e)
    print(f"{proto} N={core.retrain_every} window={cfg.window_size} seq={seqp} "
          f"targets={n} {time.time() - started:.0f}s")
    for label, (v, t) in hits.items():
        print(f"  {label:40s} val {v / n[0]:.4f} test {t / n[1]:.4f} all {(v + t) / sum(n):.4f}")


if __name__ == "__main__":
    main()
