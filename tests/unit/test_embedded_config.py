"""`streamrec run` configuration: snappy embedded defaults, paths under --data-dir, precedence."""

from __future__ import annotations

import argparse

import pytest

from streamrec.config import Config, ConfigError
from streamrec.embedded import add_arguments, embedded_config


def _config(argv: list[str], env: dict[str, str] | None = None) -> Config:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return embedded_config(parser.parse_args(argv), env or {})


def test_embedded_defaults_are_snappy_and_live_under_the_data_dir() -> None:
    c = _config(["--data-dir", "/tmp/d"])
    assert (c.retrain_every, c.retrain_interval, c.factors, c.iterations) == (5000, 5.0, 32, 10)
    assert c.store == "/tmp/d/snapshots" and c.cache_dir == "/tmp/d/cache"
    assert c.bind == "127.0.0.1:8000" and c.from_beginning is True


def test_flags_and_env_still_win_over_embedded_defaults() -> None:
    c = _config(["--factors", "8", "--store", "/elsewhere"], {"STREAMREC_RETRAIN_EVERY": "7"})
    assert (c.factors, c.retrain_every, c.store, c.iterations) == (8, 7, "/elsewhere", 10)


def test_bad_embedded_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        _config(["--store", "s3://bucket/x"])
    with pytest.raises(ConfigError):
        _config(["--factors", "0"])
