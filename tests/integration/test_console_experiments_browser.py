"""The console's experiments table in a real browser (chromium, as test_console_browser.py):
each arm's lists and intervals as /stats gives them, and a plain sentence while the difference
to the control still includes zero."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tests.integration.test_console_browser import browser, texts  # noqa: F401 (fixture)
from tests.support.embedded import Embedded, http, until

from streamrec.data import movielens

EVENTS = 3_000
EXPERIMENT = [{"name": "recency", "start": "2020-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z",
               "arms": [{"name": "on"}, {"name": "off", "scoring": {"recencyDecay": 0}}]}]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Embedded]:
    e = Embedded(tmp_path / "data", "--experiments", json.dumps(EXPERIMENT))
    try:
        ratings, _ = movielens.load()
        events = [{"user": r.user, "item": r.item, "rating": r.rating} for r in ratings[:EVENTS]]
        for k in range(0, EVENTS, 1000):
            assert http("POST", f"{e.url}/interactions", events[k:k + 1000])["accepted"] == 1000
        until("a snapshot", lambda: http("GET", f"{e.url}/model").get(
            "offsets", {}).get("0", 0) >= EVENTS, timeout=180)
        for user in map(str, range(1, 21)):
            http("GET", f"{e.url}/users/{user}/recommendations?n=10")
        yield e
    finally:
        e.cleanup()


def test_the_console_shows_each_arm_and_says_when_the_interval_still_includes_zero(
        served: Embedded, browser: webdriver.Chrome) -> None:  # noqa: F811
    browser.get(f"{served.url}/console/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#experiment-arms tbody tr")) == 2)
    (result,) = http("GET", f"{served.url}/stats")["experiments"]
    rows = [r.find_elements(By.TAG_NAME, "td")
            for r in browser.find_elements(By.CSS_SELECTOR, "#experiment-arms tbody tr")]
    shown = {cells[2].text: cells for cells in rows}
    assert set(shown) == {"on", "off"}
    for arm, cells in shown.items():
        assert cells[0].text == "recency" and cells[1].text == "running"
        assert int(cells[3].text) == result["arms"][arm]["lists"]
    assert shown["on"][7].text == "control"
    assert "still includes zero" in shown["off"][7].text  # no click, no event yet
    assert not browser.find_element(By.ID, "experiments-none").is_displayed()
    assert texts(browser, "#experiments h2") == ["Experiments"]
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
