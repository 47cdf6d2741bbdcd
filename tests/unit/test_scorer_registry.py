"""The registry drives fitting: a scorer is one module plus a registry line, and the blend
table (``scoring_weights``) decides which registered scorers the trainer fits."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp

from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config, ConfigError
from streamrec.core.events import Event
from streamrec.core.scoring import scorer as registry
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.scorer import fitted_by_window
from streamrec.core.snapshot.layout import params_of, reserved_scorer_names
from streamrec.core.window.sliding import SlidingWindow
from streamrec.operator.fields import InvalidSpec
from streamrec.operator.spec import parse_spec
from streamrec.trainer.job import FitJob
from streamrec.trainer.metrics import TrainerMetrics

NOW = 1_700_000_000.0


@dataclass(frozen=True)
class CountParams:
    smoothing: float = 1.0


class ItemCounts:
    """A toy scorer in the shape a new model takes: how often each item was taken."""

    name: ClassVar[str] = "counts"
    params_type: ClassVar[type[CountParams]] = CountParams

    def __init__(self, counts: npt.NDArray[np.float32], params: CountParams) -> None:
        self.counts, self.params = counts, params

    @property
    def items(self) -> int:
        return len(self.counts)

    def scores(self, items: Any, weights: Any) -> npt.NDArray[np.float32]:
        return self.counts + np.float32(self.params.smoothing)

    def to_arrays(self) -> dict[str, Any]:
        return {"counts": self.counts}

    def meta(self) -> dict[str, Any]:
        return {"smoothing": self.params.smoothing}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], meta: Mapping[str, Any],
                    items: int) -> ItemCounts:
        return cls(np.asarray(arrays["counts"]), CountParams(**meta))

    @classmethod
    def from_window(cls, user_items: sp.csr_matrix, user_ids: Any, item_ids: Any,
                    params: CountParams, threads: int, history: Any = None) -> ItemCounts:
        assert user_items.shape == (len(user_ids), len(item_ids))
        taken = np.asarray((user_items > 0).sum(axis=0), dtype=np.float32).reshape(-1)
        return cls(taken, params)


class Broken(ItemCounts):
    name: ClassVar[str] = "broken"

    @classmethod
    def from_window(cls, user_items: sp.csr_matrix, user_ids: Any, item_ids: Any,
                    params: CountParams, threads: int, history: Any = None) -> ItemCounts:
        raise np.linalg.LinAlgError("singular")


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.SCORERS, ItemCounts.name, ItemCounts)  # the registry line
    monkeypatch.setitem(registry.SCORERS, Broken.name, Broken)


def _window() -> SlidingWindow:
    window = SlidingWindow(10_000)
    window.extend(Event(f"u{u}", f"i{i}", 1.0, NOW - 60.0 * ((u + i) % 5))
                  for u in range(12) for i in range(u % 2, 12, 2) if i != u)
    return window


def _train(tmp_path: Path, config: Config) -> Any:
    store, window = LocalStore(tmp_path / "store"), _window()
    out = FitJob(config, store, None, TrainerMetrics(), threading.Event(), tmp_path / "work",
                 window.build(), window.contents(), {0: 1}, "000000000001", 1).run()
    assert out.published and out.error is None
    version = store.latest()
    assert version is not None
    return read_snapshot(store.fetch(version, tmp_path / "fetched")).model


def test_a_registered_scorer_with_a_weight_is_fitted_and_written_by_the_trainer(
        tmp_path: Path, registered: None) -> None:
    config = Config(factors=4, iterations=2, fit_threads=1,
                    scoring_weights=(("als", 1.0), ("counts", 0.5)))
    model = _train(tmp_path, config)
    assert set(model.scorers) == {"als", "counts"}
    assert model.scorers["counts"].counts.sum() == _window().build().user_items.nnz
    assert model.scoring.weights == {"als": 1.0, "counts": 0.5}


def test_a_failing_scorer_publishes_the_others(tmp_path: Path, registered: None,
                                               caplog: pytest.LogCaptureFixture) -> None:
    config = Config(factors=4, iterations=2, fit_threads=1,
                    scoring_weights=(("als", 1.0), ("broken", 1.0), ("counts", 1.0)))
    model = _train(tmp_path, config)
    assert set(model.scorers) == {"als", "counts"}
    assert "broken_fit_failed" in caplog.text


def test_only_scorers_weighed_above_zero_are_fitted(registered: None) -> None:
    assert fitted_by_window({"als": 1.0, "counts": 0.0, "item_item": 0.2}) == ["item_item"]
    assert fitted_by_window(ScoringParams(item_item_weight=0.0,
                                          sequential_weight=0.0).weights) == []
    assert fitted_by_window(ScoringParams().weights) == ["item_item", "sequential"]


def test_without_a_table_the_item_item_and_sequential_weights_make_the_blend() -> None:
    assert Config(item_item_weight=0.4, sequential_weight=0.2).scoring.weights == {
        "als": 0.6, "item_item": 0.4, "sequential": 0.2}
    table = Config(scoring_weights=(("item_item", 1.0),)).scoring.weights
    assert table == {"item_item": 1.0}


@pytest.mark.parametrize(("raw", "message"), [
    ("als=1,sessionknn=0.5", "unknown scorer 'sessionknn'"),
    ("als=1,item_item=1001", "must be in \\[0, 1000\\]"),
    ("als=0,item_item=0", "at least one weight > 0"),
    ("als", "expected scorer=weight"),
])
def test_a_bad_weights_table_names_the_problem(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env({"STREAMREC_SCORING_WEIGHTS": raw})


def test_a_cr_weights_table_with_an_unknown_scorer_is_rejected_naming_it() -> None:
    spec: dict[str, Any] = {
        "image": {"repository": "streamrec", "tag": "1"},
        "kafka": {"bootstrapServers": "k:9092"},
        "snapshots": {"bucket": "bkt", "credentialsSecret": "s3"},
        "scoring": {"weights": {"als": 1.0, "sessionknn": 1.0}}}
    with pytest.raises(InvalidSpec, match="sessionknn") as err:
        parse_spec(spec)
    assert err.value.field_path == "spec.scoring.weights"


def test_the_weights_table_round_trips_through_a_manifest() -> None:
    params = ScoringParams(scorer_weights=(("als", 0.5), ("item_item", 2.0)))
    assert ScoringParams.from_dict(params.to_dict()) == params
    assert "scorer_weights" not in ScoringParams().to_dict()


def test_no_registered_scorer_has_a_name_the_snapshot_reserves() -> None:
    assert {"factors", "scoring", "scorers", "window", "user_ids", "users",
            "item_users"} <= reserved_scorer_names()  # format 9's users.<p>.* and item_users
    assert not set(registry.SCORERS) & reserved_scorer_names()


@pytest.mark.parametrize("name", ["factors", "scoring", "window"])
def test_a_scorer_named_like_the_models_own_params_or_files_is_refused_when_written(
        tmp_path: Path, registered: None, name: str) -> None:
    model = _train(tmp_path, Config(factors=4, iterations=2, fit_threads=1,
                                    scoring_weights=(("als", 1.0), ("counts", 0.5))))
    model.scorers[name] = model.scorers.pop("counts")  # as if the class were named so
    with pytest.raises(ValueError, match=rf"\['{name}'\] are reserved in the snapshot"):
        params_of(model)
