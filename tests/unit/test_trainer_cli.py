"""`streamrec trainer` argument handling, JSON log lines and the metrics endpoints."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest

from streamrec.cli import build_parser, main
from streamrec.config import ConfigError
from streamrec.trainer.cli import JsonFormatter, _config
from streamrec.trainer.metrics import MetricsServer, TrainerMetrics


def test_the_original_positional_form_sets_topic_retrain_every_and_window():
    args = build_parser().parse_args(["trainer", "clicks", "500", "20000", "-b"])
    cfg = _config(args)
    assert (cfg.topic, cfg.retrain_every, cfg.window_size, cfg.from_beginning) == (
        "clicks", 500, 20000, True)


def test_a_setting_given_as_positional_and_flag_is_a_config_error():
    args = build_parser().parse_args(["trainer", "clicks", "--topic", "other"])
    with pytest.raises(ConfigError):
        _config(args)


def test_a_bad_positional_is_a_config_error_naming_the_field():
    args = build_parser().parse_args(["trainer", "clicks", "many"])
    with pytest.raises(ConfigError, match="retrain_every"):
        _config(args)


def test_a_json_message_is_merged_into_the_log_line():
    record = logging.LogRecord("streamrec.trainer.job", logging.INFO, __file__, 1, "%s",
                               (json.dumps({"event": "retrain", "version": "000000000001"}),),
                               None)
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "retrain" and line["level"] == "info" and "msg" not in line


def test_metrics_and_healthz_are_served():
    metrics = TrainerMetrics()
    metrics.accepted.inc(3)
    server = MetricsServer(metrics, host="127.0.0.1", port=0, stale_after=60).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        body = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert "streamrec_trainer_events_accepted_total 3.0" in body
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        metrics.last_step -= 120
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/healthz", timeout=5)
        assert e.value.code == 503
    finally:
        server.stop()


@pytest.mark.parametrize("argv", [["run"], ["serve"], ["trainer"], ["evaluate"],
                                  ["operator", "-A"]])
def test_an_unknown_flag_after_a_subcommand_prints_that_subcommands_usage_and_exits_2(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    command = argv[0]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--bogus-flag"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: streamrec {command} " in err
    assert f"streamrec {command}: error: unrecognized arguments: --bogus-flag" in err


def test_an_unknown_flag_before_any_subcommand_prints_the_top_level_usage(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--bogus-flag"])
    assert e.value.code == 2
    assert "usage: streamrec [-h]" in capsys.readouterr().err
