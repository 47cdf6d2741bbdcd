"""MovieLens-100K from the recbole wheel: the atomic-file parser and the real cached data."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from streamrec.data import movielens

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
ITEMS = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
         "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime\n377\tHeavyweights\t\tX\n")


def _wheel(tmp_path: Path) -> Path:
    path = tmp_path / "recbole-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("recbole/dataset_example/ml-100k/ml-100k.inter", INTER)
        z.writestr("recbole/dataset_example/ml-100k/ml-100k.item", ITEMS)
    return path


def test_ratings_come_out_in_timestamp_order_with_titles(tmp_path: Path) -> None:
    ratings, titles = movielens.load(_wheel(tmp_path))
    assert [(r.user, r.item, r.rating) for r in ratings] == [
        ("22", "377", 1.0), ("196", "242", 3.0), ("186", "302", 3.0)]
    assert ratings[0].timestamp == 878887116.0
    assert ratings[0].as_json() == {"user": "22", "item": "377", "rating": 1.0,
                                    "timestamp": 878887116.0}
    assert titles == {"242": "Kolya (1996)", "302": "L.A. Confidential (1997)",
                      "377": "Heavyweights"}


def test_columns_are_found_by_header_name_not_position() -> None:
    lines = iter(["timestamp:float\trating:float\titem_id:token\tuser_id:token", "5\t4\ti\tu"])
    assert movielens.parse_inter(lines) == [movielens.Rating("u", "i", 4.0, 5.0)]


def test_malformed_files_raise_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(movielens.DatasetError):
        movielens.parse_inter(iter(["user_id:token\titem_id:token"]))
    with pytest.raises(movielens.DatasetError):
        movielens.parse_inter(iter([INTER.splitlines()[0], "1\t2\tthree\t4"]))
    bad = tmp_path / "recbole-9-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("other.txt", "x")
    with pytest.raises(movielens.DatasetError):
        movielens.load(bad)


def test_real_movielens_100k_is_fetched_and_parsed() -> None:
    # Fetches the wheel from PyPI on first use: the suite runs with PyPI reachable, so a failure
    # here is a real failure, never a skip.
    ratings, titles = movielens.load()
    assert len(ratings) == 100_000
    assert len({r.user for r in ratings}) == 943 and len(titles) == 1682
    assert all(a.timestamp <= b.timestamp for a, b in zip(ratings, ratings[1:], strict=False))
    assert titles["1"] == "Toy Story (1995)"


def test_genres_come_from_the_class_column(tmp_path: Path) -> None:
    assert movielens.load_genres(_wheel(tmp_path)) == {
        "242": ("Comedy",), "302": ("Crime",), "377": ("X",)}
    no_class = iter(["item_id:token\tmovie_title:token_seq", "1\tToy Story"])
    assert movielens.parse_genres(no_class) == {}
    multi = iter(["class:token_seq\titem_id:token", "Animation Children's Comedy\t1", "\t2"])
    assert movielens.parse_genres(multi) == {"1": ("Animation", "Children's", "Comedy")}
