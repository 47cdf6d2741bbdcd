"""docs/configuration.md is checked against the real parsers, `Config` and the domains."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from streamrec.cli import build_parser
from streamrec.config import _NO_FLAG, FIELDS, Config, show_default
from streamrec.core.domains import CONFIG_RANGES
from streamrec.embedded import EMBEDDED_DEFAULTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
COMMANDS = ("trainer", "serve", "run")
# Flags of these commands that are not config fields (documented under the table).
NOT_FIELDS = {"-h", "--help", "--grace", "-b"}
ROW = re.compile(r"^\| `(\w+)` \| `(\w+)` \| (`--[a-z0-9-]+`|—) \| (.+?) \| "
                 r"(`[^`]*`)? ?\| ([a-z, ]+) \|$")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def _rows() -> dict[str, tuple[str, ...]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} documented twice"
            rows[m.group(1)] = m.groups()[1:]
    return rows


def test_every_config_field_has_one_row_with_its_env_var():
    rows = _rows()
    assert set(rows) == set(FIELDS)
    for name, (env, *_rest) in rows.items():
        assert env == FIELDS[name][1], name


def test_documented_flags_are_exactly_the_flags_each_command_accepts():
    parsers, rows = _subparsers(), _rows()
    for name, (_env, flag, _default, _range, used) in rows.items():
        commands = {c.strip() for c in used.split(",")}
        if flag == "—":
            assert name in _NO_FLAG, f"{name} has a flag but the docs say it has none"
            continue
        flag = flag.strip("`")
        for command in COMMANDS:
            assert (flag in _flags(parsers[command])) == (command in commands), (name, command)
    documented = {r[1].strip("`") for r in rows.values()}
    # Every on/off flag also has its `--no-` form (docs/configuration.md says so once).
    documented |= {"--no-" + f[2:] for f in documented if f.startswith("--")}
    for command in COMMANDS:
        undocumented = {f for f in _flags(parsers[command]) - NOT_FIELDS if f not in documented}
        assert undocumented == set(), (command, undocumented)


def test_documented_defaults_are_the_ones_the_code_uses():
    for name, (_env, _flag, default, _range, used) in _rows().items():
        expected = f"`{show_default(name, getattr(Config(), name))}`"
        if name in EMBEDDED_DEFAULTS and "run" in used:
            expected += f" (run: `{show_default(name, EMBEDDED_DEFAULTS[name])}`)"
        assert default.startswith(expected), (name, default, expected)


def test_documented_ranges_are_the_domains_the_code_checks():
    for name, (_env, _flag, _default, rng, _used) in _rows().items():
        expected = f"`{CONFIG_RANGES[name].text()}`" if name in CONFIG_RANGES else None
        assert rng == expected, name


@pytest.mark.parametrize("command", COMMANDS)
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
    else:
        assert "STREAMREC_BIND; default 0.0.0.0:8000" in text


# RecommenderService spec field -> config field (the operator fills STREAMREC_* from these).
CR_FIELDS = {
    ("kafka", "minWeight"): "min_weight", ("model", "factors"): "factors",
    ("model", "regularization"): "regularization", ("model", "iterations"): "iterations",
    ("model", "alpha"): "alpha", ("training", "windowSize"): "window_size",
    ("training", "retrainEvery"): "retrain_every",
    ("training", "decayHalfLifeSeconds"): "decay_half_life", ("snapshots", "keep"): "keep",
    ("serving", "workers"): "workers", ("serving", "threads"): "threads",
    ("scoring", "recencyDecay"): "recency_decay",
    ("scoring", "recencyHalfLifeSeconds"): "recency_half_life",
    ("scoring", "historyCap"): "history_cap", ("scoring", "itemItemWeight"): "item_item_weight",
    ("scoring", "itemItemL2"): "item_item_l2",
    ("scoring", "itemItemMaxDenseItems"): "item_item_max_dense",
    ("scoring", "itemItemNeighbours"): "item_item_neighbours",
}


@pytest.mark.parametrize(
    "crd", ["k8s/crd.yaml", "helm/streamrec/crds/recommenderservices.streamrec.io.yaml"])
def test_the_crd_schema_bounds_every_numeric_field_by_its_domain(crd):
    import yaml

    doc = yaml.safe_load((DOC.parents[1] / crd).read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for (group, key), field in CR_FIELDS.items():
        schema, domain = spec["properties"][group]["properties"][key], CONFIG_RANGES[field]
        assert (schema["minimum"], schema["maximum"]) == (domain.low, domain.high), key
        assert schema.get("exclusiveMinimum", False) == domain.open_low, key
    training = spec["properties"]["training"]["properties"]
    assert training["retrainIntervalSeconds"]["maximum"] == CONFIG_RANGES["retrain_interval"].high


def test_the_helm_values_schema_bounds_the_example_by_the_same_domains():
    schema = json.loads((DOC.parents[1] / "helm/streamrec/values.schema.json").read_text())
    example = schema["properties"]["example"]["properties"]
    for (group, key), field in CR_FIELDS.items():
        if group == "kafka" or key in ("decayHalfLifeSeconds", "recencyHalfLifeSeconds"):
            continue  # not in the chart's example values, or empty there (off)
        bounds, domain = example[group]["properties"][key], CONFIG_RANGES[field]
        assert (bounds["minimum"], bounds["maximum"]) == (domain.low, domain.high), key
