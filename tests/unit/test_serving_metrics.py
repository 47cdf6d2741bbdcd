"""Serving metrics: the pure lag/age rules and what the exposition derives from the gauges."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from streamrec.serving import metrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_lag_is_zero_seconds_when_the_consumer_is_caught_up():
    assert metrics.lag_seconds(0, None, now=100.0) == 0.0
    assert metrics.lag_seconds(0, 40.0, now=100.0) == 0.0


def test_lag_behind_is_the_age_of_the_last_event_read():
    assert metrics.lag_seconds(12, 97.5, now=100.0) == 2.5
    assert metrics.lag_seconds(3, 101.0, now=100.0) == 0.0  # clock skew never goes negative


def test_lag_behind_with_nothing_read_yet_is_unknown():
    assert metrics.lag_seconds(5, None, now=100.0) is None


def test_snapshot_age_is_that_of_the_oldest_served_snapshot():
    assert metrics.snapshot_age([90.0, 70.0], now=100.0) == 30.0
    assert metrics.snapshot_age([0.0, 95.0], now=100.0) == 5.0  # 0: a worker with no model
    assert metrics.snapshot_age([], now=100.0) is None
    assert metrics.snapshot_age([0.0], now=100.0) is None


def test_exposition_derives_the_model_age_from_created_at():
    metrics.SNAPSHOT_CREATED.set(1_000.0)
    body, ctype = metrics.exposition(now=1_042.0)
    assert ctype.startswith("text/plain")
    assert _samples(body.decode())[(metrics.AGE_NAME, ())] == 42.0


def test_model_info_names_only_the_version_now_served():
    metrics.served("v-a", None)
    metrics.served("v-b", "v-a")
    info = "streamrec_model_info"
    assert REGISTRY.get_sample_value(info, {"version": "v-b"}) == 1.0
    assert REGISTRY.get_sample_value(info, {"version": "v-a"}) is None


def test_model_info_keeps_one_series_however_many_retrains_were_served():
    previous = None
    for k in range(18):  # the 18 retrains
        metrics.served(f"r-{k:02d}", previous)
        previous = f"r-{k:02d}"
    body, _ = metrics.exposition()
    series = [line for line in body.decode().splitlines()
              if line.startswith("streamrec_model_info{") and 'version="r-' in line]
    assert series == ['streamrec_model_info{version="r-17"} 1.0']


def test_observe_counts_by_route_method_and_status_with_a_latency_histogram():
    labels = {"route": "/t/<x>", "method": "GET", "status": "418"}
    before = REGISTRY.get_sample_value("streamrec_http_requests_total", labels) or 0.0
    metrics.observe("/t/<x>", "GET", 418, 0.0007)
    metrics.observe("/t/<x>", "GET", 418, None)  # no timer (failed before the app ran)
    assert REGISTRY.get_sample_value("streamrec_http_requests_total", labels) == before + 2
    assert REGISTRY.get_sample_value("streamrec_http_request_seconds_bucket",
                                     {**labels, "le": "0.001"}) == 1.0
    assert REGISTRY.get_sample_value("streamrec_http_request_seconds_count", labels) == 1.0


def test_the_gunicorn_master_shares_imports_but_leaves_no_live_gauge(tmp_path):
    # The master imports the serving package (its metric objects included) for its workers to
    # share; its live gauges' files must go, or its never-updated values (created_at 0) would
    # join the workers' aggregation.
    import os
    import subprocess
    import sys

    code = ("import sys; from streamrec.serving.server import share_imports; share_imports(); "
            "assert 'numpy' in sys.modules and 'streamrec.serving.http.recommend' in sys.modules")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("gauge_live*.db"))


def test_unknown_methods_share_one_series():
    metrics.observe("unmatched", "BREW", 405, None)
    metrics.observe("unmatched", "FROB", 405, None)
    labels = {"route": "unmatched", "status": "405"}
    assert REGISTRY.get_sample_value("streamrec_http_requests_total",
                                     {**labels, "method": "OTHER"}) == 2.0
    assert REGISTRY.get_sample_value("streamrec_http_requests_total",
                                     {**labels, "method": "BREW"}) is None
