"""Status is computed purely from what the children, Secrets and store report."""

from __future__ import annotations

from typing import Any

import pytest

from streamrec.core.snapshot.trainingstatus import TrainingStatus
from streamrec.operator.env import all_secret_refs
from streamrec.operator.snapshots import latest_key, parse_latest, parse_training
from streamrec.operator.spec import parse_spec
from streamrec.operator.status import (
    CONDITION_TYPES,
    SnapshotRead,
    compute_status,
    deployment_condition,
    invalid_status,
    secret_problems,
    status_changed,
)

T0, T1 = "2025-01-01T00:00:00Z", "2025-01-01T00:05:00Z"


def deployment(
    replicas: int = 2, ready: int = 2, updated: int = 2, generation: int = 3, observed: int = 3
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": max(ready, updated),
            "readyReplicas": ready,
            "updatedReplicas": updated,
        },
    }


def status_of(**kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "observed_generation": 3,
        "trainer": deployment(replicas=1, ready=1, updated=1),
        "serving": deployment(),
        "secret_issues": [],
        "snapshot": SnapshotRead(version="20250101T000000Z-0001"),
        "previous": {},
        "now": T0,
    }
    args.update(kwargs)
    return compute_status(**args)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_all_children_ready_means_ready() -> None:
    status = status_of()
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == 3
    assert status["servingReplicas"] == 2
    assert status["snapshotVersion"] == "20250101T000000Z-0001"
    conds = conditions(status)
    # Training appears once the trainer has reported a fit (see the tests below).
    assert [c["type"] for c in status["conditions"]] == list(CONDITION_TYPES[:-1])
    assert all(c["status"] == "True" for c in conds.values())
    assert all(c["lastTransitionTime"] == T0 for c in conds.values())


def test_the_status_timer_leaves_observed_generation_alone() -> None:
    assert "observedGeneration" not in status_of(observed_generation=None)


def test_a_serving_rollout_in_progress_is_progressing_and_says_how_far() -> None:
    status = status_of(serving=deployment(replicas=3, ready=1, updated=2))
    assert status["phase"] == "Progressing"
    assert status["servingReplicas"] == 1
    serving = conditions(status)["ServingReady"]
    assert (serving["status"], serving["reason"]) == ("False", "RollingOut")
    assert serving["message"] == "1/3 replicas ready, 2/3 updated"
    assert conditions(status)["Ready"]["message"].startswith("ServingReady: 1/3")


@pytest.mark.parametrize(
    ("dep", "reason"),
    [
        (None, "NotFound"),
        (deployment(generation=4, observed=3), "RolloutPending"),
        (deployment(ready=2, updated=1), "RollingOut"),
        ({**deployment(), "status": {**deployment()["status"], "replicas": 3}}, "RollingOut"),
        (
            {
                **deployment(),
                "status": {
                    "conditions": [
                        {
                            "type": "Progressing",
                            "reason": "ProgressDeadlineExceeded",
                            "message": "ReplicaSet has timed out progressing.",
                        }
                    ]
                },
            },
            "ProgressDeadlineExceeded",
        ),
    ],
)
def test_deployment_not_ready_reasons(dep: dict[str, Any] | None, reason: str) -> None:
    cond = deployment_condition("Trainer", dep)
    assert (cond.type, cond.ok, cond.reason) == ("TrainerReady", False, reason)


def test_a_deployment_scaled_to_zero_is_ready() -> None:
    assert deployment_condition("Serving", deployment(replicas=0, ready=0, updated=0)).ok


def test_missing_secret_degrades_and_names_the_secret_and_field() -> None:
    spec = parse_spec(
        {
            "image": {"repository": "streamrec", "tag": "1"},
            "kafka": {
                "bootstrapServers": "k:9092",
                "securityProtocol": "SASL_SSL",
                "credentialsSecret": "kafka-user",
            },
            "snapshots": {"bucket": "bkt", "credentialsSecret": "s3-creds"},
        }
    )
    secrets = {"s3-creds": {"AWS_ACCESS_KEY_ID": "eA==", "AWS_SECRET_ACCESS_KEY": "eQ=="}}
    issues = secret_problems(all_secret_refs("recs", spec), secrets, "shop")
    assert issues == [
        "Secret 'kafka-user' (spec.kafka.credentialsSecret) not found in namespace 'shop'"
    ]
    status = status_of(secret_issues=issues)
    assert status["phase"] == "Degraded"
    found = conditions(status)["SecretsFound"]
    assert (found["status"], found["reason"]) == ("False", "SecretNotFound")
    assert "kafka-user" in found["message"] and "spec.kafka.credentialsSecret" in found["message"]
    assert conditions(status)["Ready"]["status"] == "False"


def test_a_secret_without_a_needed_key_is_reported_with_the_key() -> None:
    spec = parse_spec(
        {
            "image": {"repository": "streamrec", "tag": "1"},
            "kafka": {"bootstrapServers": "k:9092"},
            "snapshots": {"bucket": "bkt", "credentialsSecret": "s3-creds"},
        }
    )
    issues = secret_problems(
        all_secret_refs("recs", spec), {"s3-creds": {"AWS_ACCESS_KEY_ID": "eA=="}}, "ns"
    )
    assert issues == [
        "Secret 's3-creds' (spec.snapshots.credentialsSecret) has no key 'AWS_SECRET_ACCESS_KEY'"
    ]


def test_no_snapshot_yet_is_reported_without_failing_readiness() -> None:
    status = status_of(snapshot=SnapshotRead())
    assert status["phase"] == "Ready"
    assert status["snapshotVersion"] is None
    snap = conditions(status)["SnapshotPublished"]
    assert (snap["status"], snap["reason"]) == ("False", "NoSnapshot")


def test_an_unreadable_store_keeps_the_last_known_version() -> None:
    status = status_of(
        snapshot=SnapshotRead(error="s3://b/recs/LATEST: AccessDenied"),
        previous={"snapshotVersion": "v7"},
    )
    assert status["snapshotVersion"] == "v7"
    snap = conditions(status)["SnapshotPublished"]
    assert (snap["reason"], snap["message"]) == (
        "StoreUnreadable",
        "s3://b/recs/LATEST: AccessDenied",
    )


def test_recomputing_an_unchanged_state_changes_nothing() -> None:
    first = status_of(now=T0)
    again = status_of(now=T1, previous=first)
    assert again == first
    assert not status_changed(first, again)


def test_a_condition_that_flips_gets_a_new_transition_time_and_others_keep_theirs() -> None:
    first = status_of(now=T0)
    later = status_of(now=T1, previous=first, serving=deployment(ready=1))
    assert conditions(later)["ServingReady"]["lastTransitionTime"] == T1
    assert conditions(later)["TrainerReady"]["lastTransitionTime"] == T0
    assert status_changed(first, later)


def test_an_invalid_spec_fails_with_the_field_in_the_condition() -> None:
    previous = status_of(now=T0)
    status = invalid_status(
        generation=4,
        reason="InvalidSpec",
        message="spec.model.factors: must be an integer >= 1 (got 0)",
        previous=previous,
        now=T1,
    )
    assert status["phase"] == "Failed" and status["observedGeneration"] == 4
    valid = conditions(status)["SpecValid"]
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
    assert valid["message"].startswith("spec.model.factors:")
    assert conditions(status)["Ready"]["lastTransitionTime"] == T1
    assert conditions(status)["TrainerReady"] == conditions(previous)["TrainerReady"]


def test_status_changed_treats_missing_as_none() -> None:
    assert not status_changed({}, {"snapshotVersion": None})
    assert status_changed({"snapshotVersion": "v1"}, {"snapshotVersion": None})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"20250101T000000Z-0001\n", SnapshotRead(version="20250101T000000Z-0001")),
        (b"", SnapshotRead()),
        (b"  \n", SnapshotRead()),
    ],
)
def test_latest_holds_a_version_id(raw: bytes, expected: SnapshotRead) -> None:
    assert parse_latest(raw) == expected


def test_latest_with_garbage_is_an_error_not_a_version() -> None:
    read = parse_latest(b"<html>oops</html>")
    assert read.version is None and read.error is not None and "version id" in read.error


def test_latest_lives_under_the_prefix_or_the_resource_name() -> None:
    base = {
        "image": {"repository": "streamrec", "tag": "1"},
        "kafka": {"bootstrapServers": "k:9092"},
        "snapshots": {"bucket": "bkt", "credentialsSecret": "s3"},
    }
    assert latest_key("recs", parse_spec(base)) == "recs/LATEST"
    base["snapshots"]["prefix"] = "team/a"
    assert latest_key("recs", parse_spec(base)) == "team/a/LATEST"


def test_failing_fits_make_training_false_with_the_reason_while_ready_stays_true() -> None:
    report = TrainingStatus().succeeded("000000000003", 100.0, None).failed(
        "nonfinite_factors", "fit failed (nonfinite_factors): NaN", 200.0)
    status = status_of(snapshot=SnapshotRead(version="000000000003", training=report))
    conds = conditions(status)
    assert conds["Ready"]["status"] == "True"
    assert conds["Training"]["status"] == "False"
    assert conds["Training"]["reason"] == "FitFailingNonfiniteFactors"
    assert "1 fit(s) in a row failed" in conds["Training"]["message"]
    assert "000000000003" in conds["Training"]["message"]
    assert [c["type"] for c in status["conditions"]] == list(CONDITION_TYPES)


def test_a_published_fit_after_failures_makes_training_true_again() -> None:
    report = TrainingStatus().failed("error", "boom", 1.0).succeeded("000000000004", 2.0, None)
    conds = conditions(status_of(snapshot=SnapshotRead(version="000000000004", training=report)))
    assert (conds["Training"]["status"], conds["Training"]["reason"]) == ("True", "Fitting")


def test_a_training_report_that_does_not_parse_is_ignored() -> None:
    assert parse_training(b"not json") is None
    assert parse_training(b'{"ok": "yes"}') is None
    assert parse_training(None) is None
    good = TrainingStatus().failed("empty_window", "x", 5.0)
    assert parse_training(good.to_bytes()) == good
