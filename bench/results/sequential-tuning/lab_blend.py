"""Rank weighted sums of ``lab_dump.py``'s components: recall@10 on validation / test / all.

    python bench/results/sequential-tuning/lab_blend.py unit \\
        '{"d.1": {"als@0.1": 0.5, "ease@0.1": 0.5, "sr": 0.35}}'

Each blend is ``Σ w · component`` (components already standardised, as the product's blend
does); seen items are excluded; a case of a user unknown at the time is not counted (as in
``sr_replay.py``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

OUT = Path(os.environ.get("LAB_OUT", "/tmp/lab27"))
BATCH = 2048


def recall(proto: str, blends: dict[str, dict[str, float]]) -> dict[str, tuple[float, ...]]:
    d = OUT / proto
    meta = np.load(d / "meta.npz")
    ptr, seen, target = meta["seen_ptr"], meta["seen"], meta["target"]
    part, valid = meta["part"], meta["valid"]
    comps = sorted({c for b in blends.values() for c in b})
    arrays = {c: np.load(d / f"{c}.npy", mmap_mode="r") for c in comps}
    cases = len(target)
    hits = {label: np.zeros(cases, bool) for label in blends}
    for lo in range(0, cases, BATCH):
        hi = min(lo + BATCH, cases)
        chunk = {c: np.asarray(a[lo:hi]) for c, a in arrays.items()}
        rows = np.repeat(np.arange(hi - lo), np.diff(ptr[lo:hi + 1]))
        cols = seen[ptr[lo]:ptr[hi]]
        for label, table in blends.items():
            total = np.zeros_like(next(iter(chunk.values())))
            for c, w in table.items():
                total += np.float32(w) * chunk[c]
            total[rows, cols] = -np.inf
            top = np.argpartition(-total, 10, axis=1)[:, :10]
            hits[label][lo:hi] = (top == target[lo:hi, None]).any(axis=1)
    out = {}
    for label, h in hits.items():
        v = h[valid & (part == 0)].mean()
        t = h[valid & (part == 1)].mean()
        a = h[valid].mean()
        out[label] = (100 * v, 100 * t, 100 * a)
    return out


def main() -> None:
    proto = sys.argv[1]
    blends = json.loads(sys.argv[2])
    for label, (v, t, a) in recall(proto, blends).items():
        print(f"  {label:44s} val {v:.2f} test {t:.2f} all {a:.2f}")


if __name__ == "__main__":
    main()
