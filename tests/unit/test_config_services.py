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

from streamrec.config import Config, ConfigError, add_config_arguments
from streamrec.embedded import EMBEDDED_DEFAULTS, add_arguments, embedded_config
from streamrec.settings import service_rows

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "streamrec"
FIELDS = {f.name for f in dataclasses.fields(Config)}

#: Fields a service's modules mention but it deliberately does not take, and why.
FIXED: dict[str, dict[str, str]] = {
    "serve": {"dlq_topic": "read only to redact the embedded log (a Redacting sink, `run`)"},
    "run": {"group": "the embedded log's consumer group: one trainer, the default name",
            "s3_endpoint": "create_app opens an S3 store only when given none; run gives its "
                           "local store and refuses s3:// (embedded_config)",
            # Serving groups are for `serve` over Kafka; the embedded log has one partition
            # and `run` one process, which is one group: the defaults.
            **dict.fromkeys(("topic_partitions", "serving_groups", "serving_group",
                             "group_urls", "forward_timeout"),
                            "one embedded process is one serving group (docs/groups.md)")},
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


def _is_config_type(annotation: ast.expr | None) -> bool:
    text = "" if annotation is None else ast.unparse(annotation)
    return text.strip("'\"").rpartition(".")[2] in ("Config", "Config | None")


def _config_reads(path: Path) -> list[tuple[str, int]]:
    """``(attribute, line)`` for each read of a `Config` field or property in ``path``:
    ``config.x``, ``self.config.x`` / ``self._config.x``, ``getattr(config, "x")``, through any
    name bound to one (``c = self.config``, ``settings: Config = ...``, a parameter annotated
    ``Config``, a walrus)."""
    tree = ast.parse(path.read_text())
    aliases = {"config", "cfg"}

    def is_config(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id in aliases) or (
            isinstance(node, ast.Attribute) and node.attr in ("config", "config_", "_config"))

    for _ in range(3):  # aliases of aliases
        for node in ast.walk(tree):
            if isinstance(node, ast.arg) and _is_config_type(node.annotation):
                aliases.add(node.arg)
            elif isinstance(node, ast.Assign) and is_config(node.value):
                aliases.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and isinstance(
                    node.target, ast.Name) and (
                    (isinstance(node, ast.AnnAssign) and _is_config_type(node.annotation))
                    or (node.value is not None and is_config(node.value))):
                aliases.add(node.target.id)
    reads = [(n.attr, n.lineno) for n in ast.walk(tree)
             if isinstance(n, ast.Attribute) and is_config(n.value)]
    reads += [(n.args[1].value, n.lineno) for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
              and n.func.id == "getattr" and len(n.args) >= 2 and is_config(n.args[0])
              and isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str)]
    return reads


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


def test_the_scan_sees_reads_through_properties_and_aliases(tmp_path: Path) -> None:
    assert _fields_behind("als") >= {"factors", "alpha", "fit_threads"}
    assert _fields_behind("kafka_client_config") >= {"bootstrap_servers", "kafka_password"}
    job = {attr for attr, _ in _config_reads(PACKAGE / "trainer" / "job.py")}
    assert {"scoring", "scorer_params", "ann"} <= job  # through `c = self.config`
    module = tmp_path / "m.py"
    module.write_text(
        "def f(settings: Config, other: 'Config | None') -> None:\n"
        "    a = settings.topic\n"
        "    b = other.group\n"
        "    s: Config = make()\n"
        "    c = s.keep\n"
        "    if (w := self._config):\n"
        "        d = w.bind\n"
        "    e = getattr(self.config, 'workers')\n"
        "    f = self._config.threads\n")
    assert {attr for attr, _ in _config_reads(module)} == {
        "topic", "group", "keep", "bind", "workers", "threads"}


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


def test_every_setting_of_the_resource_is_taken_by_a_pod_it_reaches() -> None:
    """The operator passes a CR field to the pods as its variable (operator/env.py); the pods
    run `streamrec trainer` and `streamrec serve`, so a row only `run` takes would be dead in
    Kubernetes."""
    from streamrec.settings import SETTINGS
    dead = [r.name for r in SETTINGS if r.config and r.cr is not None and r.cr_env
            and r.env_name is not None and not {"trainer", "serve"} & set(r.services)]
    assert dead == []


def test_a_blank_value_is_refused_and_a_flag_beats_a_malformed_variable() -> None:
    with pytest.raises(ConfigError) as e:
        Config.load(None, {"STREAMREC_TOPIC": "   "}, service="trainer")
    assert (e.value.field, e.value.source) == ("topic", "STREAMREC_TOPIC")
    assert "blank" in e.value.message
    assert Config.load(None, {"STREAMREC_TOPIC": ""}, service="trainer").topic == "interactions"
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ("factors", "bind"))
    args = parser.parse_args(["--factors", "8", "--bind", "127.0.0.1:9"])
    c = Config.load(args, {"STREAMREC_FACTORS": "many", "STREAMREC_BIND": "nowhere"})
    assert (c.factors, c.bind) == (8, "127.0.0.1:9")
