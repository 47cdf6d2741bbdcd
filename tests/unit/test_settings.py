"""The settings table is the one source: the generated files equal the generator's output, and
Config, the flags, the operator's CR parser and env builder, the CRD and Helm's schema all
follow the rows."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamrec.cli import build_parser
from streamrec.config import Config, ConfigError
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.model import ALSParams
from streamrec.operator.env import config_data, spec_value
from streamrec.operator.fields import InvalidSpec
from streamrec.operator.spec import parse_spec
from streamrec.settings import BY_NAME, CONFIG_ROWS, SETTINGS, service_rows
from streamrec.settings.experiments import Experiments
from streamrec.settings.kinds import Bool, Enum, Num
from streamrec.settings.placements import Placements
from streamrec.settings.render import main, outputs
from streamrec.settings.structured import Listed

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("trainer", "serve", "run", "operator")
# Flags of the commands that are not settings.
NOT_SETTINGS = {"-h", "--help", "--grace", "-b", "-n", "--namespace", "-A", "--all-namespaces"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in outputs(ROOT)))
def test_the_committed_generated_file_equals_the_generators_output(path: str) -> None:
    expected = outputs(ROOT)[ROOT / path]
    assert (ROOT / path).read_text(encoding="utf-8") == expected, (
        f"{path} is out of date: run `make settings`")


def test_the_render_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    for path in outputs(ROOT):
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["--root", str(tmp_path), "--check"]) == 0
    (tmp_path / "k8s/crd.yaml").write_text("stale\n", encoding="utf-8")
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert main(["--root", str(tmp_path)]) == 0  # rewrites it
    assert main(["--root", str(tmp_path), "--check"]) == 0


def test_config_has_one_field_per_config_row_with_the_rows_default() -> None:
    fields = dataclasses.fields(Config)
    assert [f.name for f in fields] == [r.name for r in CONFIG_ROWS]
    for row in CONFIG_ROWS:
        assert getattr(Config(), row.name) == row.default, row.name


def test_defaults_come_from_the_core_dataclasses_that_use_them() -> None:
    als, scoring = ALSParams(), ScoringParams()
    assert BY_NAME["factors"].default == als.factors == Config().factors
    assert BY_NAME["iterations"].default == als.iterations
    assert BY_NAME["recency_decay"].default == scoring.recency_decay
    assert parse_spec(_minimal()).model.factors == als.factors


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_exactly_the_flags_of_its_rows(command: str) -> None:
    parser = _subparsers()[command]
    expected = {r.flag_name for r in service_rows(command) if r.flag_name}
    expected |= {"--no-" + r.name.replace("_", "-") for r in service_rows(command)
                 if r.flag_name and isinstance(r.kind, Bool)}
    assert _flags(parser) - NOT_SETTINGS == expected


def test_serve_has_no_dead_model_flags() -> None:
    flags = _flags(_subparsers()["serve"])
    assert "--regularization" not in flags and "--alpha" not in flags


def test_secrets_have_an_env_var_and_no_flag() -> None:
    secrets = [r for r in SETTINGS if r.secret]
    assert {r.name for r in secrets} == {"kafka_username", "kafka_password", "ingest_token",
                                         "erasure_key"}
    for row in secrets:
        assert row.flag_name is None and row.env_name is not None
        assert all(row.name.replace("_", "-") not in " ".join(_flags(p))
                   for p in _subparsers().values())


@pytest.mark.parametrize("command", ("trainer", "serve", "run"))
def test_help_shows_the_defaults_and_ranges_this_command_really_uses(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    if command == "run":
        assert "STREAMREC_FACTORS; default 32; range [1, 1024]" in text
        assert "STREAMREC_ITERATIONS; default 10" in text
        assert "STREAMREC_BIND; default 127.0.0.1:8000" in text
        assert "STREAMREC_WINDOW_SIZE; default 200000" in text
    elif command == "trainer":
        assert "STREAMREC_FACTORS; default 64; range [1, 1024]" in text
        assert "STREAMREC_FORMAT; default auto; one of auto, text, json" in text
    else:
        assert "STREAMREC_BIND; default 0.0.0.0:8000" in text


def test_a_bad_operator_flag_exits_2_naming_it(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["operator", "-A", "--liveness-port", "70000"])
    assert exit_.value.code == 2
    assert "--liveness-port: must be an integer in [0, 65535]" in capsys.readouterr().err


def _minimal() -> dict[str, Any]:
    return {"image": {"repository": "streamrec", "tag": "1"},
            "kafka": {"bootstrapServers": "k:9092"},
            "snapshots": {"bucket": "bkt", "credentialsSecret": "s3"}}


def _other_value(row: Any) -> Any:
    """A valid value of ``row``'s CR field other than its default."""
    kind = row.kinds[1]
    if isinstance(kind, Num):
        d = kind.domain
        value = d.low + 1 if d.integer else (d.low + min(d.high, d.low + 2)) / 2
        if value == row.cr_default_value:  # halfway to the low end, or one up for integers
            value = value + 1 if d.integer else (d.low + value) / 2
        return value
    if isinstance(kind, Bool):
        return not row.cr_default_value
    if isinstance(kind, Enum):
        return next(c for c in kind.choices if c != row.cr_default_value)
    if row.name == "feedback_weights":
        return {"click": 2.0}
    if row.name == "scoring_weights":
        return {"als": 0.5, "item_item": 2.0}
    if row.name == "spark_executor_memory":
        return "3g"
    if isinstance(kind, Listed):
        return ["https://x.example"]
    if row.name == "experiments":
        return [{"name": "recency", "start": "2026-12-01T00:00:00Z",
                 "end": "2026-12-15T00:00:00Z", "traffic": 0.5,
                 "arms": [{"name": "control"},
                          {"name": "off", "scoring": {"recencyDecay": 0}}]}]
    return "x-" + row.name.replace("_", "-")


def test_every_cr_field_with_an_env_var_reaches_the_services_config() -> None:
    spec: dict[str, Any] = _minimal()
    rows = [r for r in SETTINGS if r.cr and r.env_name and r.cr_env and r.config]
    for row in rows:
        node = spec
        for part in filter(None, row.cr_section.split(".")):  # "": a field of spec itself
            node = node.setdefault(part, {})
        node[row.cr_key] = _other_value(row)
    spec["kafka"]["securityProtocol"] = "SASL_SSL"
    spec["kafka"]["credentialsSecret"] = "kafka-user"
    parsed = parse_spec(spec)
    # STREAMREC_PLACEMENTS names the file mounted in serving pods only (placements' ConfigMap).
    data = {k: v for k, v in config_data("rec", parsed).items() if k != "STREAMREC_PLACEMENTS"}
    config = Config.from_env(data)
    for row in rows:
        got, want = getattr(config, row.name), spec_value(parsed, row)
        if row.name == "feedback_weights":
            assert dict(got)["click"] == 2.0
        else:
            assert got == want, row.name


@pytest.mark.parametrize("row", [r for r in SETTINGS if r.cr and isinstance(r.kinds[1], Num)],
                         ids=lambda r: r.name)
def test_a_cr_number_outside_its_rule_is_rejected_naming_the_field(row: Any) -> None:
    spec: dict[str, Any] = _minimal()
    node = spec
    for part in row.cr_section.split("."):
        node = node.setdefault(part, {})
    node[row.cr_key] = row.kinds[1].domain.low - 1
    with pytest.raises(InvalidSpec) as err:
        parse_spec(spec)
    assert err.value.field_path == f"spec.{row.cr}"


@pytest.mark.parametrize("row", [r for r in CONFIG_ROWS if isinstance(r.kind, Num)],
                         ids=lambda r: r.name)
def test_an_env_number_outside_its_rule_names_the_field_and_variable(row: Any) -> None:
    with pytest.raises(ConfigError, match=rf"invalid {row.name} \(from {row.env_name}\): must be"):
        Config.from_env({row.env_name: str(row.kind.domain.low - 1)})


@pytest.mark.parametrize(
    "crd", ["k8s/crd.yaml", "helm/streamrec/crds/recommenderservices.streamrec.io.yaml"])
def test_the_crd_schema_bounds_every_numeric_field_by_its_rows_domain(crd: str) -> None:
    doc = yaml.safe_load((ROOT / crd).read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for row in SETTINGS:
        if row.cr is None or not isinstance(row.kinds[1], Num):
            continue
        node = spec
        for part in row.cr.split("."):
            node = node["properties"][part]
        domain = row.kinds[1].domain
        assert node["minimum"] == domain.low and node.get("maximum", float("inf")) == domain.high
        assert node.get("exclusiveMinimum", False) == domain.open_low, row.name


def test_the_helm_values_mirror_the_rows_defaults() -> None:
    values = yaml.safe_load((ROOT / "helm/streamrec/values.yaml").read_text())
    for row in SETTINGS:
        if row.helm is None or row.helm.startswith("example.kafka.bootstrap") or (
                row.helm.startswith("example.snapshots.")):
            continue  # the example's own Kafka and MinIO
        node = values
        for part in row.helm.split("."):
            node = node[part]
        expected = row.cr_default_value if row.cr else row.default
        if row.name == "log_format":
            expected = "plain"  # the chart logs plain lines
        if row.name in ("feedback_weights", "scoring_weights"):
            expected = {}
        if isinstance(row.kinds[1], (Listed, Experiments, Placements)):
            expected = []
        assert node == ("" if expected is None else expected), row.helm


def test_the_helm_values_schema_takes_the_chart_values() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "helm/streamrec/values.schema.json").read_text())
    values = yaml.safe_load((ROOT / "helm/streamrec/values.yaml").read_text())
    jsonschema.validate(values, schema)
    values["example"]["model"]["factors"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, schema)


def test_a_generated_block_without_its_markers_is_an_error_not_a_silent_skip() -> None:
    from streamrec.settings.code import replace_blocks

    with pytest.raises(ValueError, match="Config"):
        replace_blocks("class Config:\n    pass\n", {"Config": "x: int = 1"})
    text = ("class A:\n    # BEGIN GENERATED: make settings (A)\n    old: int = 0\n"
            "    # END GENERATED: make settings (A)\n")
    assert "    x: int = 1\n" in replace_blocks(text, {"A": "x: int = 1"})
    assert "old" not in replace_blocks(text, {"A": "x: int = 1"})


def _lower_host(entry: str) -> str:
    text = entry.strip().lower()
    if not text.startswith("https://"):
        raise ValueError(f"{entry!r} is not https://host")
    return text


def test_a_list_setting_reads_text_and_cr_arrays_and_names_the_bad_entry() -> None:
    from streamrec.settings.kinds import BadValue

    kind = Listed(_lower_host, {"type": "string"}, max_items=2, noun="hosts")
    assert kind.parse("https://A, https://b,https://a") == ("https://a", "https://b")
    with pytest.raises(ValueError, match="empty entry"):
        kind.parse("https://a,,https://b")
    assert kind.problem(("https://a",)) is None and kind.problem(("HTTPS://A",)) is not None
    assert kind.from_cr(["https://A"]) == ("https://a",)
    with pytest.raises(BadValue) as err:
        kind.from_cr(["https://a", "ftp://b"])
    assert err.value.subpath == "[1]" and "ftp://b" in err.value.message
    with pytest.raises(BadValue, match="at most 2"):
        kind.from_cr(["https://a", "https://b", "https://c"])
    assert kind.env(("https://a", "https://b")) == "https://a,https://b"
    assert kind.schema() == {"type": "array", "maxItems": 2, "items": {"type": "string"}}


def test_a_checked_setting_says_why_it_refuses() -> None:
    from streamrec.settings.structured import Checked

    def at_least_four(text: str) -> None:
        if len(text) < 4:
            raise ValueError("must be at least 4 characters")

    kind = Checked(at_least_four)
    assert kind.problem("abcd") is None
    assert kind.problem("abc") == "must be at least 4 characters"
    assert kind.problem("") == "must be a non-empty string"


_BAD_EXPERIMENT = [{"name": "t", "start": "2026-12-01T00:00:00Z", "end": "2026-12-15T00:00:00Z",
                    "arms": [{"name": "a"}, {"name": "b", "scoring": {"historyCap": 0}}]}]


def test_a_bad_experiment_in_a_cr_is_rejected_naming_the_field() -> None:
    spec: dict[str, Any] = _minimal()
    spec["experiments"] = _BAD_EXPERIMENT
    with pytest.raises(InvalidSpec) as err:
        parse_spec(spec)
    assert err.value.field_path == "spec.experiments[0].arms[1].scoring.historyCap"


def test_a_bad_experiment_flag_or_file_names_the_field_and_where_it_came_from(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid experiments \(from STREAMREC_EXPERIMENTS\): "
                                          r"\[0\]\.arms\[1\]\.scoring\.historyCap: "):
        Config.from_env({"STREAMREC_EXPERIMENTS": json.dumps(_BAD_EXPERIMENT)})
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(_BAD_EXPERIMENT))
    with pytest.raises(ConfigError, match=r"\[0\]\.arms\[1\]\.scoring\.historyCap"):
        Config.from_env({"STREAMREC_EXPERIMENTS": str(path)})
    good = _BAD_EXPERIMENT[0] | {"arms": [{"name": "a"}, {"name": "b"}]}
    path.write_text(yaml.safe_dump([good]))
    (exp,) = Config.from_env({"STREAMREC_EXPERIMENTS": str(path)}).experiments
    assert [a.name for a in exp.arms] == ["a", "b"]
    # YAML as written by hand: unquoted times (YAML reads them as datetimes), inline or a file.
    text = ("- name: t\n  start: 2026-12-01T00:00:00Z\n  end: 2026-12-15T00:00:00Z\n"
            "  arms: [{name: a}, {name: b}]\n")
    path.write_text(text)
    assert Config.from_env({"STREAMREC_EXPERIMENTS": str(path)}).experiments == (exp,)
    assert Config.from_env({"STREAMREC_EXPERIMENTS": text}).experiments == (exp,)
    with pytest.raises(ConfigError, match=r"\[0\]\.start: needs a time zone"):
        naive = text.replace("00:00:00Z\n  end", "00:00:00\n  end")
        Config.from_env({"STREAMREC_EXPERIMENTS": naive})


_BAD_PLACEMENT = [{"name": "home", "boosts": [{"when": "true", "add": 1},
                                              {"when": "'a' in categoris", "add": 1}]}]


def test_a_bad_placement_in_a_cr_is_rejected_naming_the_field() -> None:
    spec: dict[str, Any] = _minimal()
    spec["placements"] = _BAD_PLACEMENT
    with pytest.raises(InvalidSpec) as err:
        parse_spec(spec)
    assert err.value.field_path == "spec.placements[0].boosts[1].when"
    spec["placements"] = [{"name": "home", "filter": "'Drama' in categories"}]
    assert parse_spec(spec).placements is not None


def test_a_bad_placement_flag_or_file_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid placements \(from STREAMREC_PLACEMENTS\): "
                                          r"\[0\]\.boosts\[1\]\.when: names 'categoris'"):
        Config.from_env({"STREAMREC_PLACEMENTS": json.dumps(_BAD_PLACEMENT)})
    path = tmp_path / "placements.yaml"
    path.write_text(yaml.safe_dump(_BAD_PLACEMENT))
    with pytest.raises(ConfigError, match=r"invalid placements \(from --placements\): "
                                          r"\[0\]\.boosts\[1\]\.when"):
        Config.load(build_parser().parse_args(["run", "--placements", str(path)]), {},
                    service="run")
    path.write_text(yaml.safe_dump([{"name": "home"}]))
    source = Config.from_env({"STREAMREC_PLACEMENTS": str(path)}).placements
    assert source.path == str(path) and [p.name for p in source.placements] == ["home"]
