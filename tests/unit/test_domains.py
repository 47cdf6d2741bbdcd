"""Issue 16's examples, each with its right value: extremes are refused or harmless, never fatal."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from streamrec.adapters.source import SourceMessage
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.core.domains import MAX_CONFIDENCE, MAX_TS_AHEAD, MAX_WEIGHT, arrival_times
from streamrec.core.events import Event, InvalidEvent, parse_event
from streamrec.core.scoring.foldin import fold_in, gram, solve
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.training import SAFE_CONFIDENCE, fit
from streamrec.core.snapshot.trainingstatus import TrainingStatus
from streamrec.core.window.sliding import SlidingWindow
from streamrec.trainer.ingest import ingest
from streamrec.trainer.job import FitJob
from streamrec.trainer.metrics import TrainerMetrics

PARAMS = ALSParams(factors=4, iterations=5, num_threads=1)
NOW = 1_750_000_000.0


def _msg(offset: int, value: bytes, ts: float | None = NOW) -> SourceMessage:
    return SourceMessage(0, offset, value, None, ts)


def _board(weight: float = 1.0) -> SlidingWindow:
    window = SlidingWindow(10_000)
    window.extend(Event(f"u{u}", f"i{i}", weight, NOW - 3600.0 * ((u + i) % 5))
                  for u in range(12) for i in range(u % 2, 12, 2) if i != u)
    return window


# -- item 1: one event must not stop training -------------------------------------------------

@pytest.mark.parametrize("raw", [
    b'{"user":"u1","item":"50","weight":1e30}', b'{"user":"u1","item":"50","weight":1e22}',
    b'{"user":"u1","item":"50","weight":1e39}', b"u1:50:1e22", b"u1:50:1e16",
    b'{"user":"u1","item":"50","rating":1000000.5}'])
def test_a_weight_above_1e6_is_refused_as_bad_weight(raw):
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw)
    assert err.value.reason == "bad_weight"
    assert "1e6]" in err.value.detail


def test_the_largest_accepted_weight_is_1e6():
    assert parse_event(b"u:i:1e6").weight == MAX_WEIGHT
    assert parse_event(b'{"user":"u","item":"i","weight":1000000}').weight == MAX_WEIGHT


def test_the_1e30_event_is_dead_lettered_and_every_other_event_is_kept():
    out = ingest([_msg(0, b"u0:i1"), _msg(1, b'{"user":"u1","item":"50","weight":1e30}'),
                  _msg(2, b"u2:i3:2")], now=NOW)
    assert [e.user for e in out.events] == ["u0", "u2"]
    ((msg, err),) = out.dead
    assert (msg.offset, err.reason) == (1, "bad_weight")


def test_max_weight_events_piling_up_on_one_cell_fit_finite_with_the_cap_counted():
    window = _board()
    window.extend(Event("u1", "i3", MAX_WEIGHT) for _ in range(50))  # 5e7 summed: over the cap
    model = fit(window.build(), PARAMS)
    assert np.isfinite(model.als.user_factors).all() and np.isfinite(model.als.item_factors).all()
    assert model.fit_info is not None and model.fit_info.capped_cells == 1
    assert model.fit_info.confidence_cap == MAX_CONFIDENCE
    assert model.recommend("u1", n=3).items


def test_a_fit_whose_first_attempt_is_not_finite_recovers_at_the_safe_cap_at_once():
    window = _board()
    window.extend(Event("u1", "i3", MAX_WEIGHT) for _ in range(100))
    matrix = window.build()
    matrix.user_items.data[:] = np.where(matrix.user_items.data > 1e6, 1e22, 1.0)
    model = fit(matrix, PARAMS, cap=math.inf)  # 1e22 uncapped: implicit's CG gives NaN
    assert model.fit_info is not None
    assert model.fit_info.recovered_from is not None
    assert "nonfinite_factors" in model.fit_info.recovered_from
    assert model.fit_info.confidence_cap == SAFE_CONFIDENCE
    assert np.isfinite(model.als.user_factors).all()
    # The fold-in uses the cap the model was fitted with, and gives a finite vector.
    assert np.isfinite(model.als.fold_in([0, 1], [MAX_WEIGHT, 1.0])).all()


def test_a_failed_fit_is_counted_by_reason_reported_in_the_store_and_recovers(tmp_path: Path):
    store, metrics = LocalStore(tmp_path / "store"), TrainerMetrics()
    empty = SlidingWindow(10)
    config = Config(factors=4, iterations=2, keep=2)
    failed = FitJob(config, store, None, metrics, _never(), tmp_path / "work", empty.build(),
                    empty.contents(), {0: 0}, "000000000001", 0).run()
    assert failed.reason == "empty_window" and not failed.published
    sample = metrics.registry.get_sample_value
    assert sample("streamrec_trainer_fit_failures_total", {"reason": "empty_window"}) == 1
    assert sample("streamrec_trainer_last_fit_error", {"reason": "empty_window"}) == 1
    report = TrainingStatus.from_bytes(store.training_status() or b"")
    assert (report.ok, report.failures, report.reason) == (False, 1, "empty_window")

    window = _board()
    ok = FitJob(config, store, None, metrics, _never(), tmp_path / "work", window.build(),
                window.contents(), {0: 1}, "000000000001", 1, failed.training or report).run()
    assert ok.published
    assert sample("streamrec_trainer_last_fit_error", {"reason": "empty_window"}) == 0
    report = TrainingStatus.from_bytes(store.training_status() or b"")
    assert (report.ok, report.failures, report.failures_total) == (True, 0, 1)
    assert report.reason == "empty_window"  # the last error stays visible after recovery
    assert report.version == store.latest() == "000000000001"


def _never():
    import threading

    return threading.Event()


# -- item 2: no 500 at serving time -----------------------------------------------------------

def test_fold_in_of_the_heaviest_accepted_history_is_finite():
    model = fit(_board().build(), PARAMS)
    items = np.arange(len(model.item_ids))
    vector = model.als.fold_in(np.repeat(items, 500), np.full(500 * len(items), MAX_WEIGHT))
    assert np.isfinite(vector).all() and np.any(vector)


def test_the_solve_falls_back_to_least_squares_for_a_singular_system():
    a = np.array([[1.0, 1.0], [1.0, 1.0]])  # singular: Cholesky fails
    x = solve(a, np.array([1.0, 1.0]))
    assert np.isfinite(x).all() and np.allclose(a @ x, [1.0, 1.0])
    assert not np.any(solve(np.full((2, 2), np.inf), np.ones(2)))  # never NaN out


def test_an_uncapped_fold_in_that_failed_at_1e16_now_gives_a_finite_vector():
    y = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    x = fold_in(y, gram(y, 0.05), [3], [1e16], alpha=1.0, cap=math.inf)  # the old failure
    assert np.isfinite(x).all()


# -- item 3: one timestamp must not wipe out the decayed weights -------------------------------

def test_a_timestamp_in_milliseconds_is_refused_and_other_decayed_weights_stay(tmp_path: Path):
    messages = [_msg(k, json.dumps({"user": f"u{k % 7}", "item": f"i{k % 5}",
                                    "ts": NOW - 600.0 * k}).encode()) for k in range(60)]
    window = SlidingWindow(1000, decay_half_life=86_400.0)
    window.extend(ingest(messages, now=NOW).events)
    before = window.build()
    poison = [_msg(60, b'{"user":"x","item":"i0","ts":1750000000000}'),  # milliseconds
              _msg(61, b'{"user":"x","item":"i0","ts":4102444800}'),  # the year 2100
              _msg(62, json.dumps({"user": "y", "item": "i9",
                                   "ts": NOW + MAX_TS_AHEAD / 2}).encode())]  # clock skew
    out = ingest(poison, now=NOW)
    assert [e.reason for _, e in out.dead] == ["bad_timestamp", "future_timestamp"]
    assert "milliseconds" in out.dead[0][1].detail
    assert [e.ts for e in out.events] == [NOW]  # skew within tolerance: recorded as arrival
    window.extend(out.events)
    after = window.build()
    top = int(np.argmax(before.popularity))
    assert after.popularity[top] == pytest.approx(before.popularity[top])
    # 12 events of i0, 0..55 x 10 min old: before issue 16, the ms event took this to 0.
    assert before.popularity[top] == pytest.approx(
        sum(2 ** (-600.0 * k / 86_400) for k in range(0, 60, 5)))
    common = before.user_items.toarray()
    assert np.allclose(after.user_items.toarray()[: common.shape[0], : common.shape[1]], common)


def test_a_transport_timestamp_ahead_of_the_consumer_counts_as_now():
    assert arrival_times([NOW + 1e6, NOW - 5.0, None, -1.0, 1e13], NOW) == [
        NOW, NOW - 5.0, None, None, None]
    out = ingest([_msg(0, b"u:i", ts=NOW + 1e6)], now=NOW)
    assert out.events[0].ts == NOW


def test_a_restarted_trainer_continues_the_stored_fit_report(tmp_path: Path):
    from tests.support.memlog import MemLog, MemSink, MemSource

    from streamrec.trainer.service import Trainer

    store = LocalStore(tmp_path / "store")
    store.put_training_status(TrainingStatus().failed("nonfinite_factors", "NaN", 1.0).to_bytes())
    log = MemLog()
    log.create_topic("t")
    trainer = Trainer(Config(topic="t", factors=4, iterations=2, from_beginning=True),
                      MemSource(log, "t"), MemSink(log), store, workdir=tmp_path / "work")
    trainer.resume()
    assert (trainer.training.failures_total, trainer.training.reason) == (1, "nonfinite_factors")
    store.put_training_status(b"{not json")
    assert trainer._last_report() == TrainingStatus()  # a bad report is ignored, not fatal
    trainer.shutdown(0)
