"""What keeps a worker's live state current: background followers of the store and the logs.

- ``reloader.py``: polls the store's LATEST, loads and verifies, swaps the `Holder`;
- ``consumer.py``: the lifecycle shared by the log followers (one daemon thread each);
- ``foldin.py``: follows the interactions topic into the fresh events (real-time fold-in);
- ``items.py``: follows the items topic into the catalogue.

Each starts after the fork (gunicorn's ``post_worker_init``), never before.
"""
