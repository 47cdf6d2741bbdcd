"""Old snapshot formats made from new ones, for the tests that check they still load."""

from __future__ import annotations

import json
from pathlib import Path

from streamrec.core.snapshot.layout import SCORERS_FORMAT
from streamrec.core.snapshot.manifest import MANIFEST_NAME, ONE_USER_SIDE_FORMAT


def downgrade(path: Path, version: int) -> dict:
    """Rewrite the snapshot at ``path`` (written by this build) into the layout of format
    ``version`` (before ``SCORERS_FORMAT``): the ALS factors lose their ``als.`` prefix and the
    manifest its ``params.scorers`` and ``params.als``. Only the layout changes: a test drops
    what the older format lacked itself (``params.scoring`` before 3, say). Returns the new
    manifest body."""
    manifest = path / MANIFEST_NAME
    body = json.loads(manifest.read_text())
    assert body["format_version"] == ONE_USER_SIDE_FORMAT, \
        "downgrade starts from what this build writes for one user side"
    assert version < SCORERS_FORMAT
    for name in ("user_factors", "item_factors"):
        (path / f"als.{name}.npy").rename(path / f"{name}.npy")
        body["files"][name] = body["files"].pop(f"als.{name}")
    del body["params"]["scorers"], body["params"]["als"]
    body["format_version"] = version
    manifest.write_text(json.dumps(body))
    return body
