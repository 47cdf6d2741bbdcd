"""The retrain policy, driven by an injected clock."""

from __future__ import annotations

import pytest

from streamrec.trainer.policy import RetrainPolicy, backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_due_after_n_events():
    policy = RetrainPolicy(every=10, interval=60, clock=Clock())
    policy.on_events(9)
    assert not policy.should_start()
    policy.on_events(1)
    assert policy.should_start()


def test_due_after_interval_only_with_new_events():
    clock = Clock()
    policy = RetrainPolicy(every=100, interval=60, clock=clock)
    clock.now += 120
    assert not policy.should_start()
    policy.on_events(1)
    assert policy.should_start()
    assert policy.seconds_until_due() == 0.0


def test_interval_counts_from_the_last_fit_start():
    clock = Clock()
    policy = RetrainPolicy(every=100, interval=60, clock=clock)
    policy.on_events(100)
    policy.start()
    policy.finish()
    clock.now += 30
    policy.on_events(1)
    assert not policy.should_start()
    assert policy.seconds_until_due() == pytest.approx(30)
    clock.now += 30
    assert policy.should_start()


def test_one_fit_at_a_time_and_a_retrain_due_during_it_runs_right_after():
    policy = RetrainPolicy(every=10, interval=60, clock=Clock())
    policy.on_events(10)
    assert policy.start() == 10
    policy.on_events(15)
    assert policy.due() and not policy.should_start()
    with pytest.raises(RuntimeError):
        policy.start()
    policy.finish()
    assert policy.should_start()
    assert policy.start() == 15


def test_retrains_piled_up_during_a_fit_are_coalesced_and_counted():
    policy = RetrainPolicy(every=10, interval=60, clock=Clock())
    policy.on_events(10)
    policy.start()
    policy.on_events(35)  # three retrains' worth
    policy.finish()
    assert policy.start() == 35
    assert policy.coalesced == 2
    assert policy.started == 2


def test_a_failed_fit_gives_its_events_back_and_waits_before_retrying():
    clock = Clock()
    policy = RetrainPolicy(every=10, interval=60, clock=clock)
    policy.on_events(10)
    policy.start()
    policy.on_events(3)
    policy.finish(ok=False, retry_after=5)
    assert policy.pending == 13
    assert not policy.should_start()
    clock.now += 5
    assert policy.should_start()


def test_no_events_never_due():
    clock = Clock()
    policy = RetrainPolicy(every=1, interval=1, clock=clock)
    clock.now += 1e6
    assert not policy.due()
    assert policy.seconds_until_due() is None


def test_backoff_doubles_and_is_capped():
    assert [backoff(a, base=1, cap=10) for a in range(6)] == [1, 2, 4, 8, 10, 10]
    assert backoff(10_000) == 30.0


@pytest.mark.parametrize(("every", "interval"), [(0, 1.0), (1, 0.0)])
def test_bad_settings_are_refused(every, interval):
    with pytest.raises(ValueError):
        RetrainPolicy(every, interval)


def test_after_a_failure_the_wait_is_the_hold_not_zero():
    clock = Clock()
    policy = RetrainPolicy(every=1, interval=60, clock=clock)
    policy.on_events(1)
    policy.start()
    policy.finish(ok=False, retry_after=5)
    assert policy.seconds_until_due() == pytest.approx(5)


def test_an_erasure_makes_a_retrain_due_at_once_and_a_failed_one_stays_due():
    clock = Clock()
    policy = RetrainPolicy(every=1000, interval=3600, clock=clock)
    assert not policy.should_start()
    policy.hurry()
    assert policy.should_start()
    policy.start()
    policy.finish(ok=False, retry_after=30)
    assert not policy.should_start()  # held back after the failure...
    clock.now += 31
    assert policy.should_start()  # ...but still owed
    policy.start()
    policy.finish(ok=True)
    assert not policy.should_start()
