"""MovieLens-100K for the demo, taken from the recbole wheel on PyPI (no torch, no install).

The wheel carries ``recbole/dataset_example/ml-100k/`` in RecBole's atomic-file format: a
tab-separated header of ``name:type`` columns, then one row per line. We download the wheel once
with ``pip download --no-deps`` into ``$STREAMREC_CACHE/datasets`` and read the two files out of
the zip; recbole itself is never installed (it pulls torch).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatasetError", "Rating", "cache_dir", "fetch_wheel", "load", "parse_inter",
           "parse_items"]

_INTER = "recbole/dataset_example/ml-100k/ml-100k.inter"
_ITEM = "recbole/dataset_example/ml-100k/ml-100k.item"


class DatasetError(RuntimeError):
    """The data set cannot be fetched or does not have the expected layout."""


@dataclass(frozen=True, slots=True)
class Rating:
    user: str
    item: str
    rating: float
    timestamp: float

    def as_json(self) -> dict[str, object]:
        return {"user": self.user, "item": self.item, "rating": self.rating,
                "timestamp": self.timestamp}


def cache_dir() -> Path:
    base = os.environ.get("STREAMREC_CACHE") or str(Path.home() / ".cache" / "streamrec")
    return Path(base) / "datasets"


def _columns(header: str, wanted: tuple[str, ...], what: str) -> list[int]:
    names = [c.split(":", 1)[0] for c in header.rstrip("\r\n").split("\t")]
    try:
        return [names.index(w) for w in wanted]
    except ValueError as e:
        raise DatasetError(f"{what}: header {names} lacks one of {wanted}") from e


def parse_inter(lines: Iterator[str]) -> list[Rating]:
    """Rows of an ``.inter`` file as ratings, sorted by timestamp (stable: file order on ties)."""
    header = next(lines, None)
    if header is None:
        raise DatasetError("inter: empty file")
    iu, ii, ir, it = _columns(header, ("user_id", "item_id", "rating", "timestamp"), "inter")
    out = []
    for n, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        f = line.rstrip("\r\n").split("\t")
        try:
            out.append(Rating(f[iu], f[ii], float(f[ir]), float(f[it])))
        except (IndexError, ValueError) as e:
            raise DatasetError(f"inter line {n}: cannot parse {line!r}") from e
    out.sort(key=lambda r: r.timestamp)
    return out


def parse_items(lines: Iterator[str]) -> dict[str, str]:
    """item id -> movie title (with the release year when the file has it)."""
    header = next(lines, None)
    if header is None:
        raise DatasetError("item: empty file")
    ii, it = _columns(header, ("item_id", "movie_title"), "item")
    names = [c.split(":", 1)[0] for c in header.rstrip("\r\n").split("\t")]
    iy = names.index("release_year") if "release_year" in names else None
    titles = {}
    for line in lines:
        f = line.rstrip("\r\n").split("\t")
        if len(f) <= max(ii, it):
            continue
        year = f[iy] if iy is not None and iy < len(f) and f[iy] else ""
        titles[f[ii]] = f"{f[it]} ({year})" if year else f[it]
    return titles


def parse_genres(lines: Iterator[str]) -> dict[str, tuple[str, ...]]:
    """item id -> its genres (the ``class`` column, e.g. ``("Animation", "Comedy")``); an
    item without any is left out, and so is every item of a file without the column."""
    header = next(lines, None)
    if header is None:
        raise DatasetError("item: empty file")
    names = [c.split(":", 1)[0] for c in header.rstrip("\r\n").split("\t")]
    if "class" not in names:
        return {}
    ii, ic = names.index("item_id"), names.index("class")
    out = {}
    for line in lines:
        f = line.rstrip("\r\n").split("\t")
        if len(f) > max(ii, ic) and f[ic].split():
            out[f[ii]] = tuple(f[ic].split())
    return out


def load_genres(wheel: Path | None = None) -> dict[str, tuple[str, ...]]:
    """item id -> genres of MovieLens-100K (for the demo's item records)."""
    wheel = wheel or fetch_wheel()
    try:
        with zipfile.ZipFile(wheel) as z:
            items = z.read(_ITEM).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, KeyError) as e:
        raise DatasetError(f"{wheel}: no MovieLens-100K inside ({e})") from e
    return parse_genres(iter(items.splitlines()))


def fetch_wheel(cache: Path | None = None, timeout: float = 300.0) -> Path:
    """The cached recbole wheel, downloaded with pip on first use."""
    cache = cache or cache_dir()
    found = sorted(cache.glob("recbole-*.whl"))
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "-q", "recbole", "-d", str(cache)]
    try:
        subprocess.run(cmd, check=True, timeout=timeout, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        raise DatasetError(f"pip download recbole failed: {e.stderr.strip()[-500:]}") from e
    except subprocess.TimeoutExpired as e:
        raise DatasetError(f"pip download recbole took over {timeout:.0f} s") from e
    found = sorted(cache.glob("recbole-*.whl"))
    if not found:
        raise DatasetError(f"pip download left no recbole wheel in {cache}")
    return found[-1]


def load(wheel: Path | None = None) -> tuple[list[Rating], dict[str, str]]:
    """(ratings in timestamp order, item titles) of MovieLens-100K."""
    wheel = wheel or fetch_wheel()
    try:
        with zipfile.ZipFile(wheel) as z:
            inter = z.read(_INTER).decode("utf-8")
            items = z.read(_ITEM).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, KeyError) as e:
        raise DatasetError(f"{wheel}: no MovieLens-100K inside ({e})") from e
    return parse_inter(iter(inter.splitlines())), parse_items(iter(items.splitlines()))
