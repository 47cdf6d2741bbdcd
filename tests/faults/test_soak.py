"""Soak: concurrency 32 against `streamrec serve` (2 gunicorn workers), 3 hot reloads, fold-in.

32 client threads call the read API in a loop (personal, new-user, batch, similar, popular,
the seed-compatible route) while one more thread posts events to `POST /interactions` (real
Kafka, folded in by both workers), and three new snapshots are published into the
`LocalStore` during the run. Invariants, not speed: 0 failed requests (every read 200, every
post 202), each of the 4 versions served, every posted user's events folded in, and each
worker's RSS, sampled every second, flat within 10% after the warm-up. Latency percentiles are
printed, never asserted; ``bench/soak.py`` runs the same soak for the benchmark report.

The bounded run is 30 s; ``-m slow`` runs the full 60 s.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.soak import CONCURRENCY, RSS_TOLERANCE, WARMUP_S, run_soak


def _print_and_check(result: dict[str, Any], variant: str) -> None:
    print(
        f"\nsoak ({variant}): {result['requests']} requests in {result['duration_s']} s "
        f"at concurrency {CONCURRENCY}, {result['failed']} failed, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"{result['req_per_s']} req/s, versions {result['versions_seen']}"
    )
    for pid, r in result["rss"].items():
        print(
            f"  worker {pid}: RSS {r['min_mb']}..{r['max_mb']} MB after {WARMUP_S:.0f} s "
            f"(growth {100 * (r['growth'] or 0):.1f}%, {r['samples']} samples)"
        )
    assert result["failed"] == 0, result["failures"]
    assert result["requests"] > 0 and result["events_posted"] > 0
    assert result["versions_seen"] == result["expected_versions"]
    assert result["final_version"] == result["expected_versions"][-1]
    assert result["folded_in"]
    assert result["workers_after"] == result["workers_before"]  # no worker died or recycled
    for pid, r in result["rss"].items():
        assert r["samples"] >= 5, (pid, r)
        assert r["growth"] <= RSS_TOLERANCE, (pid, r, result["rss_timeline_mb"])


@pytest.mark.timeout(300)
def test_soak_bounded_no_failed_request_and_flat_memory(kafka, tmp_path):
    _print_and_check(run_soak(kafka, tmp_path, 30.0), "bounded (30 s)")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_soak_full_no_failed_request_and_flat_memory(kafka, tmp_path):
    _print_and_check(run_soak(kafka, tmp_path, 60.0), "full (60 s)")
