"""Config: flags over env over defaults, and clear errors that name the field."""

from __future__ import annotations

import argparse

import pytest

from streamrec.config import Config, ConfigError, add_config_arguments


def _parse(argv: list[str], names: tuple[str, ...] = ("topic", "factors", "store", "use_gpu")):
    p = argparse.ArgumentParser()
    add_config_arguments(p, names)
    return p.parse_args(argv)


def test_defaults_match_the_documented_contract():
    c = Config.from_env({})
    assert (c.topic, c.window_size, c.retrain_every, c.factors, c.keep) == (
        "interactions", 1_000_000, 10_000, 64, 5)
    assert c.dlq == "interactions.dlq" and c.notify == "interactions.snapshots"


def test_flag_beats_env_which_beats_default():
    env = {"STREAMREC_TOPIC": "from-env", "STREAMREC_FACTORS": "8"}
    c = Config.load(_parse(["--topic", "from-flag"]), env)
    assert c.topic == "from-flag" and c.factors == 8


def test_bad_env_value_names_the_field_and_variable():
    with pytest.raises(ConfigError, match=r"invalid factors \(from STREAMREC_FACTORS\)"):
        Config.from_env({"STREAMREC_FACTORS": "many"})


def test_out_of_range_value_is_rejected_with_the_field_name():
    with pytest.raises(ConfigError, match=r"invalid window_size \(from STREAMREC_WINDOW_SIZE\): "
                       r"must be an integer in \[1, 1e8\]"):
        Config.from_env({"STREAMREC_WINDOW_SIZE": "0"})
    with pytest.raises(ConfigError, match="invalid format"):
        Config.from_env({"STREAMREC_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="invalid alpha"):
        Config.from_env({"STREAMREC_ALPHA": "nan"})


def test_empty_notify_topic_disables_notifications():
    assert Config.from_env({"STREAMREC_NOTIFY_TOPIC": "x"}).notify == "x"
    assert Config(notify_topic="").notify is None


def test_boolean_flags_and_env():
    assert Config.load(_parse(["--use-gpu"]), {}).use_gpu is True
    assert Config.from_env({"STREAMREC_USE_GPU": "false"}).use_gpu is False
    with pytest.raises(ConfigError, match="use_gpu"):
        Config.from_env({"STREAMREC_USE_GPU": "maybe"})


def test_secrets_never_appear_in_the_redacted_view():
    c = Config.from_env({"STREAMREC_KAFKA_PASSWORD": "hunter2", "STREAMREC_INGEST_TOKEN": "t0k"})
    assert c.kafka_client_config()["sasl.password"] == "hunter2"
    assert "hunter2" not in repr(c.redacted()) and "t0k" not in repr(c.redacted())


def test_secrets_have_no_command_line_flag():
    p = argparse.ArgumentParser()
    add_config_arguments(p, ("kafka_password", "ingest_token", "topic"))
    assert "--kafka-password" not in p.format_help()


@pytest.mark.parametrize(("env", "value", "domain"), [
    ("STREAMREC_ALPHA", "1e30", r"\[1e-6, 1e6\]"),
    ("STREAMREC_ALPHA", "inf", r"\[1e-6, 1e6\]"),
    ("STREAMREC_REGULARIZATION", "0", r"\[1e-6, 1e6\]"),
    ("STREAMREC_FACTORS", "100000", r"\[1, 1024\]"),
    ("STREAMREC_ITERATIONS", "1000000", r"\[1, 1000\]"),
    ("STREAMREC_DECAY_HALF_LIFE", "1e-300", r"\[1, 1e10\]"),
    ("STREAMREC_MIN_WEIGHT", "1e7", r"\(0, 1e6\]"),
    ("STREAMREC_RETRAIN_INTERVAL", "1e300", r"\[0.1, 1e9\]"),
    ("STREAMREC_METRICS_PORT", "70000", r"\[0, 65535\]"),
    ("STREAMREC_WORKERS", "0", r"\[1, 256\]"),
])
def test_every_hyperparameter_has_a_domain_and_out_of_it_is_refused(env, value, domain):
    with pytest.raises(ConfigError, match=domain):
        Config.from_env({env: value})


@pytest.mark.parametrize("raw", ["1_000", "\u0661\u0662", "1e3", "12.0", "²"])
def test_integers_are_plain_ascii_decimals(raw):
    with pytest.raises(ConfigError, match="cannot parse"):
        Config.from_env({"STREAMREC_WINDOW_SIZE": raw})


def test_bind_port_must_be_a_port_number():
    with pytest.raises(ConfigError, match="bind"):
        Config.from_env({"STREAMREC_BIND": "0.0.0.0:99999"})
    with pytest.raises(ConfigError, match="bind"):
        Config.from_env({"STREAMREC_BIND": "0.0.0.0:\u0668\u0660"})


@pytest.mark.parametrize("command", ["trainer", "run"])
@pytest.mark.parametrize("grace", ["nan", "inf", "-1", "1e9"])
def test_a_bad_grace_exits_2_naming_the_flag(command, grace, capsys):
    from streamrec.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--grace", grace])
    assert exit_.value.code == 2
    assert "--grace" in capsys.readouterr().err


def test_a_bad_flag_value_exits_2_naming_the_flag(capsys):
    from streamrec.cli import main

    assert main(["run", "--factors", "5000", "--data-dir", "/nonexistent/x"]) == 2
    assert "invalid factors (from --factors)" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--factors", "5000"], ["--alpha", "nan"], ["--k", "0"],
                                  ["--isgd-learn-rate", "inf"], ["--seed", "-1"]])
def test_evaluate_refuses_hyperparameters_outside_their_domain_naming_the_flag(argv, capsys):
    from streamrec.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", *argv])
    assert exit_.value.code == 2 and argv[0] in capsys.readouterr().err


def test_an_on_off_flag_can_switch_off_a_default_that_is_on_and_beats_the_env():
    names = ("online_tracking", "use_gpu")
    assert Config.load(_parse(["--no-online-tracking"], names), {}).online_tracking is False
    assert Config.load(_parse([], names), {}).online_tracking is True
    env = {"STREAMREC_USE_GPU": "true"}
    assert Config.load(_parse(["--no-use-gpu"], names), env).use_gpu is False
    assert Config.load(_parse(["--use-gpu"], names), {}).use_gpu is True


def test_allowed_origins_parse_from_env_and_flag_and_a_bad_one_names_the_field():
    import argparse

    import pytest

    from streamrec.config import ConfigError

    c = Config.from_env({"STREAMREC_ALLOWED_ORIGINS": "https://A.example, http://b.example:8080"})
    assert c.allowed_origins == ("https://a.example", "http://b.example:8080")
    assert Config.from_env({}).allowed_origins == ()
    args = argparse.Namespace(allowed_origins="https://c.example:443")
    assert Config.load(args, {}).allowed_origins == ("https://c.example",)
    for bad in ("https://a.example/path", "a.example", "https://a.example,,https://b.example"):
        with pytest.raises(ConfigError) as err:
            Config.from_env({"STREAMREC_ALLOWED_ORIGINS": bad})
        assert err.value.field == "allowed_origins"
        assert "STREAMREC_ALLOWED_ORIGINS" in str(err.value)


def test_an_empty_ingest_token_is_refused_and_an_unset_one_means_open_writes():
    import pytest

    from streamrec.config import ConfigError

    for value in ("", "  "):
        with pytest.raises(ConfigError) as err:
            Config.from_env({"STREAMREC_INGEST_TOKEN": value})
        assert err.value.field == "ingest_token" and "empty" in str(err.value)
    assert Config.from_env({}).ingest_token is None
    assert Config.from_env({"STREAMREC_INGEST_TOKEN": "t"}).ingest_token == "t"
