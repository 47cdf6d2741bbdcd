"""Optional bearer-token auth on `POST /interactions`, on a running `streamrec serve`.

With ``STREAMREC_INGEST_TOKEN`` set, a request without the token or with a wrong one gets a 401
JSON error with ``WWW-Authenticate: Bearer``, and nothing reaches the topic; the right token is
accepted (202, the event is on Kafka and folded in). Without a token configured, ingest is
open. The token never appears in the server's log, in `/model`, in `/metrics` or in
`/openapi.json`. Real gunicorn, real Kafka, a real snapshot in a `LocalStore`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition
from tests.support.serving import publish_snapshot, serve, wait_for

from streamrec.adapters.stores import LocalStore

TOKEN = "tok-" + uuid.uuid4().hex  # unique, so a leak is unambiguous when grepped
EVENT = {"user": "auth-user", "item": "i3", "weight": 2}


def _topic_size(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(high - low)
    finally:
        consumer.close()


def _setup(kafka, tmp: Path) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp / "store")
    publish_snapshot(store, tmp / "build", 1)
    return store.root, kafka.create_topic(f"auth-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}", "Bearer \u00e9\u00e8",
], ids=["absent", "empty", "no-token", "wrong", "basic-scheme", "longer", "shorter", "latin1"])
def test_a_configured_token_rejects_missing_or_wrong_credentials(kafka, authorization,
                                                                  auth_server):
    base, topic, _ = auth_server
    headers = {} if authorization is None else {"Authorization": authorization}
    r = requests.post(f"{base}/interactions", json=EVENT, headers=headers, timeout=10)
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"] == "unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert _topic_size(kafka.bootstrap, topic) == 0  # nothing produced


@pytest.fixture(scope="module")
def auth_server(kafka, tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("auth")
    root, topic = _setup(kafka, tmp)
    with serve(tmp, root, bootstrap=kafka.bootstrap, topic=topic,
               env={"STREAMREC_INGEST_TOKEN": TOKEN}) as served:
        yield served.base, topic, served.log_text
        # After every test of the module: the token never leaked into the log.
        assert TOKEN not in served.log_text()


def test_the_right_token_is_accepted_and_folded_in_and_never_shown(kafka, auth_server):
    base, topic, _ = auth_server
    for scheme in ("Bearer", "bearer"):  # the scheme is case-insensitive
        r = requests.post(f"{base}/interactions", json=EVENT,
                          headers={"Authorization": f"{scheme} {TOKEN}"}, timeout=10)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 1
    assert wait_for(lambda: _topic_size(kafka.bootstrap, topic) == 2, 20)

    def folded() -> bool:
        answers = [requests.get(f"{base}/users/auth-user/recommendations", timeout=5).json()
                   for _ in range(4)]
        return all(a["fresh_events"] == 2 for a in answers)

    assert wait_for(folded, 30)
    for path in ("/model", "/metrics", "/openapi.json", "/healthz", "/readyz"):
        body = requests.get(f"{base}{path}", timeout=5).text
        assert TOKEN not in body, path
    assert TOKEN not in auth_server[2]()  # the log so far


def test_without_a_configured_token_ingest_is_open(kafka, tmp_path):
    root, topic = _setup(kafka, tmp_path)
    with serve(tmp_path, root, bootstrap=kafka.bootstrap, topic=topic,
               env={"STREAMREC_INGEST_TOKEN": None}) as served:
        r = requests.post(f"{served.base}/interactions", json=EVENT, timeout=10)
        assert r.status_code == 202, r.text
        # A token sent to an open server is simply not needed.
        r = requests.post(f"{served.base}/interactions", json=EVENT,
                          headers={"Authorization": "Bearer anything"}, timeout=10)
        assert r.status_code == 202, r.text
    assert _topic_size(kafka.bootstrap, topic) == 2


@pytest.mark.parametrize("command", ["serve", "run"])
@pytest.mark.parametrize("value", ["", " ", "\t"])
def test_an_empty_token_is_refused_at_start_with_one_line_naming_it(tmp_path, command, value):
    # Set but empty would leave every write open: exit 2 before anything starts or is created.
    data = tmp_path / "data"
    args = ["--store", str(tmp_path / "store")] if command == "serve" else [
        "--data-dir", str(data)]
    proc = subprocess.run([sys.executable, "-m", "streamrec.cli", command, "--bind",
                           "127.0.0.1:0", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "STREAMREC_INGEST_TOKEN": value})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "STREAMREC_INGEST_TOKEN" in lines[0], proc.stderr
    assert "ingest_token" in lines[0] and "empty" in lines[0]
    assert not data.exists() and not (tmp_path / "store").exists()
