"""The grids behind ``lab_unit1-3.txt`` (``lab_dump.py`` first, then from this folder:
``python lab_grid.py unit 1 > lab_unit1.txt``, and 2, 3)."""

from __future__ import annotations

import sys

from lab_blend import recall

BASE = {"als@0.1": 0.5, "ease@0.1": 0.5}
SKNN1 = ["sknn_m10_k50", "sknn_m20_k100", "sknn_m10_k100_cos", "sknn_m20_k200_cos",
         "sknn_m50_k100_cos"]
SKNN2 = ["sknn_m5_k50", "sknn_m10_k20", "sknn_m10_k30_inv", "sknn_m5_k20", "sknn_m10_k50_inv"]
SR1 = ["sr", "sr_q_exp3", "sr_q_sqrt", "sr_q_inv2", "sr_d_inv2", "sr_d_flat", "sr_pop5",
       "sr_rown", "sr_s50", "sr_s300"]
SR2 = ["sr_b2", "sr_b35", "sr_b5", "sr_b35_qexp3", "sr_b35_s200", "sr_q_exp2", "sr_q_exp5",
       "sr_q_exp3_s300"]


def grid(n: int) -> dict[str, dict[str, float]]:
    b: dict[str, dict[str, float]] = {}
    if n == 1:
        for v in SR1:
            for s in (0.25, 0.35, 0.5):
                b[f"{v} s{s}"] = {**BASE, v: s}
        for s in (0.05, 0.1, 0.2):
            b[f"sr.35+back {s}"] = {**BASE, "sr": 0.35, "sr_back": s}
            b[f"sr.35+trend {s}"] = {**BASE, "sr": 0.35, "trend_5000": s}
        for k in SKNN1:
            for s in (0.1, 0.2, 0.35):
                b[f"sr.35+{k} {s}"] = {**BASE, "sr": 0.35, k: s}
    elif n == 2:
        b["default sr .35"] = {**BASE, "sr": 0.35}
        for v in SR2:
            for s in (0.25, 0.35, 0.45):
                b[f"{v} s{s}"] = {**BASE, v: s}
        for k in SKNN2:
            for s in (0.1, 0.2, 0.3):
                b[f"sr.35+{k} {s}"] = {**BASE, "sr": 0.35, k: s}
    else:
        for d in ("0.1", "0.15"):
            base = {f"als@{d}": 0.5, f"ease@{d}": 0.5}
            b[f"d{d} default sr .35"] = {**base, "sr": 0.35}
            for s in (0.3, 0.35, 0.4):
                b[f"d{d} sr_b35_qexp3 s{s}"] = {**base, "sr_b35_qexp3": s}
            for k in ("sknn_m10_k50_inv", "sknn_m10_k20"):
                for s in (0.1, 0.2):
                    b[f"d{d} sr_b35_qexp3 .35 + {k} {s}"] = {**base, "sr_b35_qexp3": 0.35,
                                                             k: s}
        for w in (0.4, 0.6):
            b[f"d0.1 als{1 - w:.1f}/ease{w} sr_b35_qexp3 .35"] = {
                "als@0.1": 1 - w, "ease@0.1": w, "sr_b35_qexp3": 0.35}
    return b


if __name__ == "__main__":
    results = recall(sys.argv[1], grid(int(sys.argv[2])))
    for label, (v, t, a) in sorted(results.items(), key=lambda x: -x[1][0]):
        print(f"  {label:48s} val {v:.2f} test {t:.2f} all {a:.2f}")
