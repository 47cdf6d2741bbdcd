"""Online evaluation of served lists: CTR, hit rate and rank per model version.

- ``tracker.py``: `OnlineTracker`, the last list per user and the tallies (pure);
- ``observe.py``: the fold-in observer that feeds the tracker;
- ``history.py``: the snapshots this worker loaded (the retrain history of ``/stats``);
- ``stats.py``: tallies shared between workers through files, and their exports.
"""
