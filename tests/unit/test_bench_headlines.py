"""The key-figures rows of `make bench`: figure, same-run reference, ratio, target."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _headlines import headlines  # noqa: E402


def test_trainer_rows_carry_the_raw_loop_and_the_bare_fit_as_references():
    result = {
        "targets": {"kafka_events_per_s": 200_000, "retrain_vs_bare": 1.1},
        "ingest": [
            {"path": "raw confluent-kafka consume loop (4 partitions)", "events_per_s": 250_000},
            {"path": "Trainer.step, KafkaSource (4 partitions)", "events_per_s": 210_000,
             "vs_raw": 0.84},
        ],
        "retrain": [{"window": 1_000_000, "retrain_s": 2.2, "bare_fit_s": 2.0,
                     "retrain_vs_bare": 1.1}],
    }
    ingest, retrain = headlines("trainer", result)
    assert (ingest["value"], ingest["reference_value"], ingest["ratio"]) == (210_000, 250_000,
                                                                            0.84)
    assert ingest["met"] is True
    assert (retrain["value"], retrain["reference_value"], retrain["ratio"]) == (2.2, 2.0, 1.1)
    assert retrain["met"] is True


def test_the_ratio_is_computed_when_the_benchmark_gives_only_both_figures():
    result = {"fit": [{"events": 1000, "streamrec_fit_s": 3.0, "bare_implicit_fit_s": 2.0}]}
    (fit,) = headlines("core", result)
    assert fit["ratio"] == 1.5 and fit["reference"] == "bare implicit fit, same CSR"


def test_a_benchmark_own_headline_list_wins_and_missing_keys_become_none():
    result = {"headline": [{"figure": "failed requests", "value": 0, "unit": "requests",
                            "target": "0"}]}
    (only,) = headlines("soak", result)
    assert only["figure"] == "failed requests" and only["reference"] is None
    assert only["ratio"] is None and only["met"] is None


def test_missed_serving_targets_are_flagged_not_hidden():
    result = {"latency": [{"concurrency": 1, "p50_ms": 1.5, "p99_ms": 4.0, "rps": 600},
                          {"concurrency": 32, "p50_ms": 30.0, "p99_ms": 90.0, "rps": 900}],
              "numpy_reference": {"p50_ms": 0.5, "per_core_rps": 2000}}
    rows = {r["figure"]: r for r in headlines("serving", result)}
    p50 = rows["GET recommendations p50 at concurrency 1 (HTTP, gunicorn)"]
    assert p50["met"] is False and p50["ratio"] == 3.0
    assert rows["GET recommendations p99 at concurrency 1"]["met"] is True
    assert rows["throughput at concurrency 32"]["met"] is False


def test_an_unreadable_result_gives_a_row_that_says_so_and_unknown_benchmarks_none():
    (bad,) = headlines("trainer", {"retrain": [{"window": "x"}]})
    assert "not readable" in bad["figure"]
    assert headlines("something-new", {"x": 1}) == []
    assert headlines("parse", None) == []
