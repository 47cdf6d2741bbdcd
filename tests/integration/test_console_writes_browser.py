"""Writes from a real browser: the console's own page may write, another site's page may not.

Debian's chromium (scripts/provision-browser.sh) against `streamrec run` without a token, its
default. The console records a click through ``POST /interactions`` from its own origin: it is
accepted. A page served from another origin sends the attack of the review (a ``no-cors``
``fetch`` with a ``text/plain`` body, which a browser lets any page send) and a JSON one: the
event never reaches the log, from another site (``localhost`` against ``127.0.0.1``) or from
another port of the same host.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tests.integration.test_console_browser import browser  # noqa: F401  (the fixture)
from tests.support.embedded import Embedded, until

ATTACK = """
const [url, body, mode, done] = arguments;
const headers = mode === "no-cors" ? {"Content-Type": "text/plain"}
                                   : {"Content-Type": "application/json"};
fetch(url, {method: "POST", mode, headers, body})
  .then((r) => done(mode === "no-cors" ? "sent" : String(r.status)))
  .catch((e) => done("failed: " + e));
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Embedded]:
    # One fit, of these 360 events; later writes stay fresh (fold-in), never retrained away.
    e = Embedded(tmp_path / "data", "--retrain-every", "360", "--retrain-interval", "3600")
    try:
        events = [{"user": f"u{u}", "item": f"i{(u * 5 + k) % 23}"} for u in range(60)
                  for k in range(6)]
        assert requests.post(f"{e.url}/interactions", json=events, timeout=30).status_code == 202
        until("a snapshot", lambda: requests.get(f"{e.url}/readyz", timeout=5).ok, 180)
        yield e
    finally:
        e.cleanup()


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[int]:
    """A page of another origin: an empty HTML document on a port of its own."""
    (tmp_path / "page.html").write_text("<!doctype html><title>elsewhere</title>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _known(base: str, user: str) -> bool:
    return requests.get(f"{base}/users/{user}/items", timeout=5).status_code == 200


def test_the_console_records_a_click_from_its_own_page(served: Embedded,
                                                       browser: webdriver.Chrome) -> None:  # noqa: F811
    browser.get(f"{served.url}/console/")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    form = browser.find_element(By.ID, "user-form")
    form.find_element(By.NAME, "user").send_keys("u7")
    form.find_element(By.TAG_NAME, "button").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#user-recs tbody tr"))
    browser.find_element(By.CSS_SELECTOR, "#user-recs tbody tr button:nth-of-type(2)").click()
    # textContent: the result sits in a collapsed <details>, which .text (visible text) skips.
    result = wait.until(lambda d: d.find_element(By.ID, "write-result").get_attribute(
        "textContent"))
    assert result.startswith("recorded u7"), result
    until("the click's fold-in", lambda: requests.get(
        f"{served.url}/users/u7/recommendations", timeout=5).json()["fresh_events"] == 1, 30)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"], ids=["cross-site", "same-site"])
def test_another_origins_page_cannot_write_even_with_a_no_cors_text_request(
    served: Embedded, browser: webdriver.Chrome, other_site: int, host: str  # noqa: F811
) -> None:
    browser.get(f"http://{host}:{other_site}/page.html")
    browser.set_script_timeout(30)
    target = f"{served.url}/interactions"
    user = f"victim-of-{host.replace('.', '-')}"
    body = f'{{"user": "{user}", "item": "i1"}}'
    assert browser.execute_async_script(ATTACK, target, body, "no-cors") == "sent"
    # A JSON write needs a CORS preflight, which the server never grants: the browser fails it.
    answer = browser.execute_async_script(ATTACK, target, body, "cors")
    assert answer.startswith("failed") or answer == "403", answer
    # A sentinel written after the attempts is folded in; the attacked user's event is not.
    assert requests.post(target, json={"user": "sentinel", "item": "i2"},
                         timeout=10).status_code == 202
    until("the sentinel's fold-in", lambda: _known(served.url, "sentinel"), 30)
    assert not _known(served.url, user)


def test_a_page_of_an_allowed_origin_writes_json_through_cors(
    tmp_path: Path, browser: webdriver.Chrome, other_site: int  # noqa: F811
) -> None:
    page = f"http://localhost:{other_site}"
    e = Embedded(tmp_path / "allowed", "--allowed-origins", page)
    try:
        browser.get(f"{page}/page.html")
        browser.set_script_timeout(30)
        body = '{"user": "from-the-shop", "item": "i1"}'
        assert browser.execute_async_script(ATTACK, f"{e.url}/interactions", body,
                                            "cors") == "202"
        until("its fold-in", lambda: _known(e.url, "from-the-shop"), 60)
    finally:
        e.cleanup()
