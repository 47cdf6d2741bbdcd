"""What every benchmark's JSON report says about its run: the benchmark, the machine, the load
before and after, how long it took. Shared by the benchmarks that write their own report."""

from __future__ import annotations

import os
import platform
import time
from typing import Any


def run_header(name: str, quick: bool, started: float, load_before: list[float]
               ) -> dict[str, Any]:
    """The report's first keys; ``started`` is the run's ``time.perf_counter()`` at its start
    and ``load_before`` the 1/5/15-minute load averages then (rounded)."""
    return {
        "benchmark": name, "quick": quick, "host": platform.node(), "cpus": os.cpu_count(),
        "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - started, 1),
    }
