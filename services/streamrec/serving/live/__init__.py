"""The live model of one serving worker: the served snapshot joined with what happened since.

Floor plan (each module imports only from its own floor or below):

- ``holder.py``: the one reference to the served snapshot (`Holder`, `Served`);
- ``fresh.py``: each user's events since the snapshot and their seen sets;
- ``forgotten.py``: erased users and items (snapshot tombstones plus live erasures);
- ``model.py``: `LiveModel`, the one owner of those joins, which answers every read route;
- ``answers.py``: what it answers with (`Listed`, `Known`, `Explained`) and raises (`NoModel`).

Nothing here does I/O or starts a thread: the feeds (``serving/feeds/``) write into this state.
"""
