"""95% intervals for A/B results: proportions, their difference, and means.

- **A proportion** ``x/n`` (CTR, hit rate): the Wilson score interval (Wilson 1927; method 3
  of Newcombe, *Two-sided confidence intervals for the single proportion*, Stat. Med. 17,
  1998). Unlike the Wald interval it stays inside [0, 1] and keeps its coverage near 0 and 1
  and for small ``n``.
- **A difference of proportions** ``x1/n1 - x2/n2``: Newcombe's hybrid score interval
  (method 10 of Newcombe, *Interval estimation for the difference between independent
  proportions*, Stat. Med. 17, 1998), built from the two Wilson intervals::

      d - sqrt((p1 - l1)² + (u2 - p2)²)  …  d + sqrt((u1 - p1)² + (p2 - l2)²)

- **A mean** (the mean hit rank) from ``n``, ``Σx`` and ``Σx²``: mean ± z·s/√n (normal
  approximation by the central limit theorem; s the sample standard deviation), and a
  difference of two means by Welch's standard error ``sqrt(s1²/n1 + s2²/n2)``.

Each interval assumes independent trials. Lists and events of one user are not independent,
so with heavy users the intervals are somewhat narrower than the truth (docs/experiments.md).
Pure: floats in, floats out; ``z`` defaults to 1.959964 (two-sided 95%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Z95", "Interval", "mean_difference", "mean_interval", "newcombe", "wilson"]

#: The standard normal quantile of 0.975.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """An estimate and its interval ``[low, high]``."""

    estimate: float
    low: float
    high: float

    @property
    def includes_zero(self) -> bool:
        return self.low <= 0.0 <= self.high

    def to_dict(self) -> dict[str, float | bool]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "includes_zero": self.includes_zero}


def wilson(x: int, n: int, z: float = Z95) -> Interval | None:
    """Wilson score interval of ``x`` successes in ``n`` trials; None when ``n == 0``.

    Raises ``ValueError`` unless ``0 <= x <= n``."""
    if not 0 <= x <= n:
        raise ValueError(f"need 0 <= x <= n, got x={x}, n={n}")
    if n == 0:
        return None
    p, z2 = x / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> Interval | None:
    """Newcombe's hybrid score interval of ``x1/n1 - x2/n2``; None when a side has no trial."""
    a, b = wilson(x1, n1, z), wilson(x2, n2, z)
    if a is None or b is None:
        return None
    d = a.estimate - b.estimate
    low = d - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    high = d + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high))


def _mean_var(n: int, total: float, squares: float) -> tuple[float, float]:
    mean = total / n
    var = max(0.0, (squares - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    return mean, var


def mean_interval(n: int, total: float, squares: float, z: float = Z95) -> Interval | None:
    """Mean of ``n`` values given their sum and sum of squares, ± z·s/√n; None when n == 0
    (a single value has a zero-width interval: its spread is unknown, say so by n)."""
    if n <= 0:
        return None
    mean, var = _mean_var(n, total, squares)
    half = z * math.sqrt(var / n)
    return Interval(mean, mean - half, mean + half)


def mean_difference(a: tuple[int, float, float], b: tuple[int, float, float],
                    z: float = Z95) -> Interval | None:
    """Difference of two means (``mean(a) - mean(b)``, each as (n, Σx, Σx²)) with Welch's
    standard error; None when a side is empty."""
    if a[0] <= 0 or b[0] <= 0:
        return None
    (ma, va), (mb, vb) = _mean_var(*a), _mean_var(*b)
    half = z * math.sqrt(va / a[0] + vb / b[0])
    return Interval(ma - mb, ma - mb - half, ma - mb + half)
