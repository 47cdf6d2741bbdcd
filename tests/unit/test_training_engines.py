"""Choosing the training engine, and the spark engine's settings and refusals (no JVM)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from streamrec.adapters.spark import SparkEngine, SparkSettings, SparkUnavailable, missing
from streamrec.config import Config, ConfigError
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.types import FitFailed
from streamrec.core.window.contents import WindowMatrix
from streamrec.trainer.engines import ImplicitEngine, engine_for, spark_settings


def test_implicit_is_the_default_engine_and_spark_is_chosen_by_the_setting():
    assert isinstance(engine_for(Config()), ImplicitEngine)
    cfg = Config(training_engine="spark", spark_master="local[1]", spark_executors=3,
                 spark_executor_cores=2, spark_executor_memory="3g", spark_driver_memory="512m",
                 spark_image="reg/streamrec-spark:1")
    engine = engine_for(cfg)
    assert isinstance(engine, SparkEngine)
    assert engine.settings == spark_settings(cfg) == SparkSettings(
        "local[1]", 3, 2, "3g", "512m", "reg/streamrec-spark:1")


def test_a_local_engine_binds_the_loopback_and_a_kubernetes_one_names_its_image():
    local = SparkSettings(master="local[2]").conf()
    assert local["spark.driver.bindAddress"] == "127.0.0.1"
    assert local["spark.ui.enabled"] == "false"
    k8s = SparkSettings(master="k8s://https://10.0.0.1:443", executors=4, executor_cores=2,
                        executor_memory="6g", image="reg/streamrec-spark:1").conf()
    assert "spark.driver.bindAddress" not in k8s
    assert (k8s["spark.executor.instances"], k8s["spark.executor.cores"],
            k8s["spark.executor.memory"], k8s["spark.kubernetes.container.image"]) == (
        "4", "2", "6g", "reg/streamrec-spark:1")


def test_an_empty_window_fails_as_empty_without_starting_spark():
    empty = WindowMatrix(sp.csr_matrix((0, 0), dtype=np.float32), [], [], np.zeros(0), 0)
    engine = SparkEngine(SparkSettings())
    with pytest.raises(FitFailed) as err:
        engine.fit(empty, ALSParams())
    assert err.value.reason == "empty_window" and engine._session is None


def test_a_closed_engine_refuses_to_start_a_session():
    engine = SparkEngine(SparkSettings())
    engine.close()
    with pytest.raises(SparkUnavailable, match="closed"):
        engine.session()


@pytest.mark.parametrize(("env", "value", "message"), [
    ("STREAMREC_TRAINING_ENGINE", "tensorflow", "training_engine"),
    ("STREAMREC_SPARK_EXECUTOR_MEMORY", "lots", "JVM memory size"),
    ("STREAMREC_SPARK_EXECUTORS", "0", "spark_executors"),
])
def test_a_bad_engine_setting_is_refused_naming_it(env, value, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env({env: value})


def test_the_spark_engine_says_what_is_missing_before_it_starts(monkeypatch, tmp_path):
    assert missing() is None  # this venv has pyspark (the dev extra) and the machine Java 17
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert "Java 17" in (missing() or "")


def test_a_trainer_asked_for_spark_without_java_exits_naming_the_setting(monkeypatch, tmp_path):
    import argparse

    from streamrec.trainer import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--topic", "t", "--training-engine", "spark"])
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ConfigError, match="training_engine.*Java"):
        cli.run(args)
