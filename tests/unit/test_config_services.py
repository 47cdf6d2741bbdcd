"""Each service reads only its own settings: the rows of the settings table that name it.

The operator gives the trainer and serving pods one ConfigMap, and a laptop's `.env` serves
every command, so a service must neither apply nor trip over another service's variable. A
static check keeps the table's ``services`` honest: every ``Config`` field a service's modules
read (directly or through a property such as ``config.als``) is a row that service takes.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from streamrec.config import Config, ConfigError
from streamrec.embedded import EMBEDDED_DEFAULTS, add_arguments, embedded_config
from streamrec.settings import service_rows

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "streamrec"
FIELDS = {f.name for f in dataclasses.fields(Config)}

#: Fields a service's modules mention but it deliberately does not take, and why.
FIXED: dict[str, dict[str, str]] = {
    "serve": {"dlq_topic": "read only to redact the embedded log (a Redacting sink, `run`)"},
    "run": {"group": "the embedded log's consumer group: one trainer, the default name",
            "s3_endpoint": "create_app opens an S3 store only when given none; run gives its "
                           "local store and refuses s3:// (embedded_config)"},
}


def _modules(service: str) -> list[Path]:
    trainer = sorted((PACKAGE / "trainer").glob("*.py"))
    serving = sorted((PACKAGE / "serving").rglob("*.py"))
    if service == "trainer":
        return trainer
    if service == "serve":
        return serving
    # `run`: the embedded process and the trainer and serving code it runs in-process (not
    # their command-line entry points or gunicorn's server).
    return [PACKAGE / "embedded.py", *(p for p in trainer if p.name != "cli.py"),
            *(p for p in serving if p.name not in ("cli.py", "server.py"))]


class _Reads:
    """Records the fields a `Config` property or method reads (a default Config behind it)."""

    def __init__(self) -> None:
        self.read: set[str] = set()
        self.real = Config()

    def __getattr__(self, name: str) -> Any:
        self.read.add(name)
        attr = inspect.getattr_static(Config, name, None)
        if isinstance(attr, property):
            return attr.fget(self)  # type: ignore[misc]
        if inspect.isfunction(attr):
            return lambda *a, **k: attr(self, *a, **k)
        return getattr(self.real, name)


def _fields_behind(name: str) -> set[str]:
    if name in FIELDS:
        return {name}
    attr = inspect.getattr_static(Config, name, None)
    probe = _Reads()
    if isinstance(attr, property):
        attr.fget(probe)  # type: ignore[misc]
    elif inspect.isfunction(attr) and name not in ("redacted", "validate"):
        attr(probe)
    return probe.read & FIELDS


def _config_reads(path: Path) -> list[tuple[str, int]]:
    """``(attribute, line)`` for each ``config.x``/``self.config.x`` (or an alias of one)."""
    tree = ast.parse(path.read_text())
    aliases = {"config", "cfg"}

    def is_config(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id in aliases) or (
            isinstance(node, ast.Attribute) and node.attr in ("config", "config_"))

    for node in ast.walk(tree):  # c = self.config
        if isinstance(node, ast.Assign) and is_config(node.value):
            aliases.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return [(n.attr, n.lineno) for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and is_config(n.value)]


@pytest.mark.parametrize("service", ["trainer", "serve", "run"])
def test_each_service_reads_only_the_settings_it_takes(service: str) -> None:
    takes = {r.name for r in service_rows(service) if r.config} | set(FIXED.get(service, {}))
    if service == "run":  # what embedded_config sets itself (run_default, the paths)
        takes |= set(EMBEDDED_DEFAULTS) | {"store", "cache_dir"}
    stray = [f"{path.relative_to(PACKAGE)}:{line} config.{attr} reads {sorted(extra)}"
             for path in _modules(service) for attr, line in _config_reads(path)
             if (extra := _fields_behind(attr) - takes)]
    assert not stray, (f"`streamrec {service}` would ignore these settings (add the service to "
                       f"their rows in settings/rows.py, or to FIXED with a reason): {stray}")


def test_the_scan_sees_reads_through_properties_and_aliases() -> None:
    assert _fields_behind("als") >= {"factors", "alpha", "fit_threads"}
    assert _fields_behind("kafka_client_config") >= {"bootstrap_servers", "kafka_password"}
    job = {attr for attr, _ in _config_reads(PACKAGE / "trainer" / "job.py")}
    assert {"scoring", "scorer_params", "ann"} <= job  # through `c = self.config`


def test_a_service_ignores_another_services_variables_even_malformed() -> None:
    trainer = Config.load(None, {"STREAMREC_BIND": "nowhere", "STREAMREC_WORKERS": "0",
                                 "STREAMREC_FACTORS": "8"}, service="trainer")
    assert trainer.factors == 8 and trainer.bind == Config().bind
    serve = Config.load(None, {"STREAMREC_FACTORS": "many", "STREAMREC_WINDOW_SIZE": "0",
                               "STREAMREC_BIND": "127.0.0.1:9000"}, service="serve")
    assert serve.bind == "127.0.0.1:9000" and serve.factors == Config().factors


def test_a_services_own_malformed_variable_is_still_refused_naming_it() -> None:
    with pytest.raises(ConfigError) as e:
        Config.load(None, {"STREAMREC_BIND": "nowhere"}, service="serve")
    assert (e.value.field, e.value.source) == ("bind", "STREAMREC_BIND")
    with pytest.raises(ConfigError) as e:
        Config.load(None, {"STREAMREC_FACTORS": "many"}, service="trainer")
    assert e.value.field == "factors"


def test_without_a_service_every_variable_is_read() -> None:
    with pytest.raises(ConfigError):
        Config.load(None, {"STREAMREC_BIND": "nowhere"})
    with pytest.raises(ValueError, match="unknown service"):
        Config.load(None, {}, service="operator-ish")


def test_the_logged_settings_are_the_services_own_and_keep_secrets_out() -> None:
    c = Config.load(None, {"STREAMREC_INGEST_TOKEN": "t0k", "STREAMREC_KAFKA_PASSWORD": "pw"},
                    service="serve")
    shown = c.redacted("serve")
    assert "bind" in shown and "factors" not in shown and shown["ingest_token"] == "***"
    assert shown["kafka_password"] == "***" and "t0k" not in repr(shown)
    assert "bind" not in c.redacted("trainer") and "factors" in c.redacted("trainer")


def test_run_keeps_its_defaults_against_variables_it_does_not_take() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data-dir", "/tmp/streamrec-unused"])
    env = {"STREAMREC_FROM_BEGINNING": "false", "STREAMREC_GROUP": "elsewhere",
           "STREAMREC_WORKERS": "0", "STREAMREC_RETRAIN_EVERY": "7",
           "STREAMREC_INGEST_TOKEN": "t0k"}
    c = embedded_config(args, env)
    assert c.from_beginning is True and c.group == Config().group  # not run's settings
    assert c.retrain_every == 7 and c.ingest_token == "t0k"  # run's own
