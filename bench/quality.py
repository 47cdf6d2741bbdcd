"""Recommendation quality: the prequential replay of MovieLens-100K (``streamrec evaluate``).

Compares popularity, the original service's retrain-only ALS, streamrec's ALS with fold-in and
incremental SGD on the same stream, over a grid of retrain periods N and windows W. Writes
``bench/results/quality.{json,md}`` and two PNG plots. ``--quick``: the first 10,000 events
and a tiny grid. Any other ``streamrec evaluate`` flag is passed through.

    python bench/quality.py [--quick] [--dataset synthetic --events 1000000 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from streamrec.evaluation import cli  # noqa: E402  (after the BLAS setting)

RESULTS = Path(__file__).parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_arguments(parser)
    parser.set_defaults(out=RESULTS)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
