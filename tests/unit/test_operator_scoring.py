"""``spec.scoring`` reaches the containers as the documented variables, with the service's
defaults, and a bad value is refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from streamrec.config import Config
from streamrec.operator.env import config_data
from streamrec.operator.fields import InvalidSpec
from streamrec.operator.spec import parse_spec


def spec(**scoring: Any) -> dict[str, Any]:
    return {
        "image": {"repository": "streamrec", "tag": "0.1.0"},
        "kafka": {"bootstrapServers": "kafka:9092"},
        "snapshots": {"bucket": "streamrec", "credentialsSecret": "s3-creds"},
        "scoring": scoring,
    }


def test_a_spec_without_scoring_gives_the_services_defaults():
    data = config_data("rec", parse_spec(spec()))
    scoring = {k: v for k, v in data.items() if "RECENCY" in k or "ITEM_ITEM" in k}
    config = Config.from_env(scoring)
    assert config.scoring == Config().scoring and config.item_item == Config().item_item
    assert "STREAMREC_RECENCY_HALF_LIFE" not in data


def test_scoring_fields_become_the_documented_variables():
    data = config_data("rec", parse_spec(spec(
        recencyDecay=0.25, recencyHalfLifeSeconds=3600, historyCap=50, itemItemWeight=0.7,
        itemItemL2=80, itemItemMaxDenseItems=2000, itemItemNeighbours=30)))
    del data["STREAMREC_PLACEMENTS"]  # the file mounted in serving pods only
    config = Config.from_env(data)
    assert config.scoring.recency_decay == 0.25 and config.scoring.recency_half_life == 3600
    assert config.scoring.history_cap == 50 and config.scoring.item_item_weight == 0.7
    assert config.item_item.l2 == 80 and config.item_item.max_dense_items == 2000
    assert config.item_item.neighbours == 30


@pytest.mark.parametrize(
    ("field", "value"),
    [("itemItemWeight", 1.5), ("recencyDecay", -1), ("historyCap", 0), ("itemItemL2", 0),
     ("recencyHalfLifeSeconds", "1h"), ("unknownKnob", 1)],
)
def test_a_bad_scoring_field_is_refused_by_name(field, value):
    with pytest.raises(InvalidSpec, match=f"spec.scoring.{field}"):
        parse_spec(spec(**{field: value}))


def test_bad_scoring_settings_in_the_environment_name_the_field():
    from streamrec.config import ConfigError

    with pytest.raises(ConfigError, match="item_item_weight"):
        Config.from_env({"STREAMREC_ITEM_ITEM_WEIGHT": "2"})
    with pytest.raises(ConfigError, match="recency_decay"):
        Config.from_env({"STREAMREC_RECENCY_DECAY": "-0.1"})
