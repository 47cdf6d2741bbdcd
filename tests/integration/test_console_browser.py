"""The console in a real browser: Debian's chromium, driven by selenium through chromium-driver,
against `streamrec run` served under a path prefix (as behind an Ingress with a rewrite).

Chromium comes from ``scripts/provision-browser.sh`` (part of ``make provision``); nothing is
installed here, and a missing browser fails the test. ``STREAMREC_CONSOLE_SCREENSHOT=path``
saves the screenshot there (docs/console.png is made that way); by default it goes to tmp.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from tests.support.embedded import Embedded, http, until
from tests.support.prefixproxy import PrefixProxy

from streamrec.data import movielens

EVENTS = 5_000


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.fail("chromium and chromedriver are not installed: run scripts/provision-browser.sh"
                    " (make provision)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1500,2200"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Embedded]:
    """`streamrec run` with a model of MovieLens' first events, the films' titles as item
    records, and some online traffic."""
    placements = tmp_path / "placements.json"
    placements.write_text(json.dumps(PLACEMENTS))
    e = Embedded(tmp_path / "data", "--online-bucket-seconds", "2", "--placements",
                 str(placements))
    try:
        ratings, titles = movielens.load()
        films = [{"item": i, "title": t} for i, t in titles.items()]
        for k in range(0, len(films), 1000):
            assert http("POST", f"{e.url}/items", films[k:k + 1000])["accepted"] == len(
                films[k:k + 1000])
        events = [{"user": r.user, "item": r.item, "rating": r.rating} for r in ratings[:EVENTS]]
        for k in range(0, EVENTS, 1000):
            assert http("POST", f"{e.url}/interactions", events[k:k + 1000])["accepted"] == 1000
        until("a snapshot", lambda: http("GET", f"{e.url}/model").get(
            "offsets", {}).get("0", 0) >= EVENTS, timeout=180)
        for round_ in range(3):  # lists served and some echoed back, in separate buckets
            for user in ("1", "2", "3", "5", "8"):
                body = http("GET", f"{e.url}/users/{user}/recommendations?n=10")
                top = body["items"][round_]["item"]
                http("POST", f"{e.url}/interactions", {
                    "user": user, "item": top, "recommendation_id": body["recommendation_id"]})
            time.sleep(2.1)
        until("the model with every event", lambda: http("GET", f"{e.url}/model").get(
            "offsets", {}).get("0", 0) >= EVENTS + 15, timeout=120)
        until("the films' records", lambda: http("GET", f"{e.url}/items/{films[-1]['item']}")
              .get("title") == films[-1]["title"])
        yield e
    finally:
        e.cleanup()


#: One placement for the console's selector: a slot promoted for one of five 1997 films (user
#: 1 rated only films 1-272, so they are never seen).
PLACEMENTS = [{"name": "front", "promotions": {
    "filter": "item in ['286', '288', '300', '302', '313']", "share": 0.2}}]


def labelled(item: dict[str, Any]) -> str:
    """How the console shows an item the API gave with ``fields=title``."""
    assert item["title"], item  # every film has a record with its title
    return f"{item['title']} ({item['item']})"


def texts(chrome: webdriver.Chrome, css: str) -> list[str]:
    return [str(e.text) for e in chrome.find_elements(By.CSS_SELECTOR, css)]


def text(chrome: webdriver.Chrome, css: str) -> str:
    return str(chrome.find_element(By.CSS_SELECTOR, css).text)


def painted(chrome: webdriver.Chrome, canvas_id: str) -> Any:
    """How many pixels of the canvas are not transparent, and how many datasets it has."""
    return chrome.execute_script(
        "const c = document.getElementById(arguments[0]);"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;"
        "const chart = Chart.getChart(c);"
        "return [n, chart ? chart.data.datasets.filter(s => s.data.some(v => v !== null)).length"
        " : 0];", canvas_id)


def test_console_shows_the_live_model_titled_lists_and_draws_its_charts(
        served: Embedded, browser: webdriver.Chrome, tmp_path: Path) -> None:
    with PrefixProxy(served.url) as proxy:
        browser.get(f"{proxy.url}/console")  # the relative redirect keeps the prefix
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        assert browser.current_url == f"{proxy.url}/console/"
        model = http("GET", f"{served.url}/model")
        wait.until(lambda d: text(d, "#model-version") == model["version"])
        assert text(browser, "#history tbody tr td") == model["version"]
        assert "%" in text(browser, "#versions tbody")
        popular = http("GET", f"{served.url}/popular?n=20&fields=title")["items"]
        assert texts(browser, "#top-items li") == [labelled(x) for x in popular]

        form = browser.find_element(By.ID, "user-form")
        form.find_element(By.NAME, "user").send_keys("1")
        form.find_element(By.NAME, "n").clear()
        form.find_element(By.NAME, "n").send_keys("7")
        form.find_element(By.NAME, "exclude").send_keys("50")
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#user-recs tbody tr")) == 7)
        shown = [row.find_elements(By.TAG_NAME, "td")[1].text
                 for row in browser.find_elements(By.CSS_SELECTOR, "#user-recs tbody tr")]
        api = http("GET", f"{served.url}/users/1/recommendations?n=7&exclude_seen=true"
                          "&exclude=50&fields=title")
        assert shown == [labelled(x) for x in api["items"]]
        assert "Star Wars (1977)" not in shown  # item 50, excluded
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#known-items li"))
        known = http("GET", f"{served.url}/users/1/items?fields=title")
        assert texts(browser, "#known-items li")[0] == (
            f"{labelled((known['fresh'] + known['items'])[0])} (weight "
            f"{(known['fresh'] + known['items'])[0]['weight']:g})")
        browser.find_element(By.CSS_SELECTOR, "#user-recs tbody tr button").click()  # because
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#because li"))
        assert text(browser, "#because h3") == f"because of (for {labelled(api['items'][0])})"
        why = http("GET", f"{served.url}/users/1/because/{api['items'][0]['item']}"
                          "?fields=title")["items"]
        assert [li.split(" — ")[0] for li in texts(browser, "#because li")] == [
            labelled(x) for x in why]

        # A placement: the selector lists it, the list follows it, the promoted slot is marked.
        Select(form.find_element(By.NAME, "placement")).select_by_value("front")
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(lambda d: "placement front" in text(d, "#user-meta"))
        rows = [[td.text for td in row.find_elements(By.TAG_NAME, "td")]
                for row in browser.find_elements(By.CSS_SELECTOR, "#user-recs tbody tr")]
        placed = http("GET", f"{served.url}/users/1/recommendations?n=7&exclude_seen=true"
                             "&exclude=50&fields=title&placement=front")
        assert [r[1] for r in rows] == [labelled(x) for x in placed["items"]]
        assert [r[3] for r in rows] == [x.get("mark", "") for x in placed["items"]]
        assert "promoted" in [r[3] for r in rows]
        assert texts(browser, "#placement-rows tbody tr td")[0] == "front"

        item = browser.find_element(By.ID, "item-form")
        first = api["items"][0]["item"]
        item.find_element(By.NAME, "item").send_keys(first)
        item.find_element(By.TAG_NAME, "button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#similar li")) == 10)
        similar = http("GET", f"{served.url}/items/{first}/similar?n=10&fields=title")["items"]
        assert [li.split(" — ")[0] for li in texts(browser, "#similar li")] == [
            labelled(x) for x in similar]

        wait.until(lambda d: painted(d, "ingest-chart")[1] >= 1)  # two refreshes: a rate
        pixels, datasets = painted(browser, "quality-chart")
        assert pixels > 1000 and datasets >= 2  # hit rate and CTR of the live version
        assert painted(browser, "ingest-chart")[0] > 1000
        shot = Path(os.environ.get("STREAMREC_CONSOLE_SCREENSHOT") or tmp_path / "console.png")
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        assert all(p.startswith("/streamrec/") for p in proxy.paths)
