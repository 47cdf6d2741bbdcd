"""Experiments' results kept in the snapshot store, so they outlive the experiment.

Each serving worker writes its own counts of each configured experiment's arms to the store
(``<prefix>/experiments/<experiment>/<worker token>.json``, `storebase.ExperimentResults`)
every `ARCHIVE_EVERY` seconds while they change, and once more when it stops. A part holds the
experiment's spec too, so the results of an experiment that was removed from the
configuration can still be read. The cluster-wide result of an experiment is the sum of its
parts (`stored`), with the asking worker's own part taken live. Parts of dead workers keep
counting, as the tracker's files do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from streamrec.adapters.storebase import ExperimentResults, StoreError
from streamrec.core.experiments.results import ArmCounts
from streamrec.core.experiments.spec import Experiment, ExperimentError, parse_experiments, to_json

from .experiments import arm_counts
from .periodic import Periodic
from .tracker import OnlineTracker

log = logging.getLogger(__name__)

__all__ = ["ARCHIVE_EVERY", "Archive", "Stored"]

ARCHIVE_EVERY = 30.0

#: An experiment read back from the store: its spec and its arms' summed counts.
Stored = tuple[Experiment, dict[str, ArmCounts]]


class Archive:
    """Writes a worker's experiment counts to the store and reads everyone's back."""

    def __init__(self, store: ExperimentResults, tracker: OnlineTracker,
                 experiments: Sequence[Experiment]) -> None:
        self.store, self.tracker, self.experiments = store, tracker, tuple(experiments)
        self._written: dict[str, list[list[int]]] = {}
        self._thread = Periodic("experiments-archive", ARCHIVE_EVERY, self._write_logged)

    def _part(self, e: Experiment) -> tuple[dict[str, Any], list[list[int]]]:
        counts = arm_counts(e, self.tracker.arms())
        lists = [c.to_list() for c in counts.values()]
        return {"experiment": to_json([e])[0], "worker": self.tracker.token,
                "arms": {a: c.to_list() for a, c in counts.items()}}, lists

    def write(self) -> int:
        """Write the parts that changed since the last write; returns how many."""
        written = 0
        for e in self.experiments:
            part, lists = self._part(e)
            if self._written.get(e.name) == lists or not any(any(c) for c in lists):
                continue
            self.store.put_experiment_part(e.name, self.tracker.token,
                                           json.dumps(part).encode())
            self._written[e.name] = lists
            written += 1
        return written

    def stored(self, name: str) -> Stored | None:
        """``name``'s spec and its arms' counts summed over every part in the store, this
        worker's own live; None when neither configured nor stored. ``StoreError`` when the
        store cannot be read."""
        spec = next((e for e in self.experiments if e.name == name), None)
        totals: dict[str, ArmCounts] = {}
        for token, raw in self.store.experiment_parts(name).items():
            if token == self.tracker.token:
                continue  # taken live below
            try:
                part = json.loads(raw)
                if spec is None:
                    (spec,) = parse_experiments([part["experiment"]])
                counts = {a: ArmCounts.from_list(c) for a, c in part["arms"].items()}
            except (ValueError, KeyError, TypeError, ExperimentError) as e:
                log.warning("unreadable part %s of experiment %s: %s", token, name, e)
                continue
            for arm, c in counts.items():
                totals[arm] = totals.get(arm, ArmCounts()).plus(c)
        if spec is None:
            return None
        if spec in self.experiments:
            for arm, c in self._part(spec)[0]["arms"].items():
                totals[arm] = totals.get(arm, ArmCounts()).plus(ArmCounts.from_list(c))
        return spec, totals

    def start(self) -> None:
        if self.experiments:
            self._thread.start()

    def _write_logged(self) -> None:
        try:
            self.write()
        except StoreError as e:
            log.warning("experiment results not archived: %s", e)

    def stop(self) -> None:
        """Stop writing; the last counts are written (they survive the exit)."""
        if self.experiments:
            self._thread.stop()
