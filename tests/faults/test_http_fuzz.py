"""HTTP fuzzing of a running `streamrec serve`: schemathesis from its own `/openapi.json`.

The server is the real CLI under gunicorn (2 gthread workers) on 127.0.0.1, serving a real
snapshot from a `LocalStore`, with ingest and fold-in on a real Kafka broker. Every operation in
the spec is fuzzed (derandomized, bounded ``max_examples``; ``-m slow`` runs more) and each
answer is checked: no 5xx, a status code and content type the spec declares, a body that
matches the declared schema, declared headers, and ``Allow`` on a 405. The request-side
heuristics (``positive_data_acceptance``, ``negative_data_rejection``) are not run: the event
rules (weights > 0 after ``min_weight``, ``user:item[:weight]`` text, ids of at most 256 bytes
of UTF-8) are not all expressible in JSON Schema, and the API is deliberately lenient where
it is harmless (a JSON ``null`` means "default", unknown fields of an event are ignored
exactly as on Kafka); an empty or repeated query value is a 400 (issue 16). The spec does
state the id rules it can (non-empty, no control characters).

Then the transport edges: a 100 KB query string, a 64 KB header, 200 headers, a 2 MiB body get
a clean 4xx from gunicorn's request limits or the app, and the server goes on serving.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as st_checks
from tests.support.serving import Served, publish_snapshot, serve

from streamrec.adapters.stores import LocalStore

CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.response_headers_conformance,
    st_checks.unsupported_method,
]


@pytest.fixture(scope="module")
def server(kafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("http-fuzz")
    store = LocalStore(tmp / "store")
    publish_snapshot(store, tmp / "build", 1)
    topic = kafka.create_topic(f"fuzz-{uuid.uuid4().hex[:8]}")
    with serve(tmp, store.root, bootstrap=kafka.bootstrap, topic=topic) as served:
        yield served
        # Whichever tests ran (bounded or slow): no 500 was logged with a traceback.
        assert "unhandled error" not in served.log_text(), served.log_text()[-3000:]


@pytest.fixture(scope="module")
def api(server: Served):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(f"{server.base}/openapi.json")


schema = schemathesis.pytest.from_fixture("api")


def _fuzz(case, server: Served) -> None:  # type: ignore[no-untyped-def]
    response = case.call_and_validate(base_url=server.base, checks=CHECKS, timeout=30)
    assert response.status_code < 500, response.text


@pytest.mark.timeout(600)
@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema_and_never_5xx(case, server):  # type: ignore[no-untyped-def]
    _fuzz(case, server)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@schema.parametrize()
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_survives_a_long_fuzz(case, server):  # type: ignore[no-untyped-def]
    _fuzz(case, server)


def _raw(served: Served, request: bytes) -> int:
    """Send raw bytes, read the answer to the end; its status code (0: no answer at all)."""
    host, port = served.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        # The server may answer and close before reading everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    status_line = data.split(b"\r\n", 1)[0].split()
    return int(status_line[1]) if len(status_line) >= 2 and status_line[1].isdigit() else 0


# What each gets: gunicorn's limit_request_line (4094) → 400, limit_request_field_size (8190)
# and limit_request_fields (100) → 431, the app's MAX_CONTENT_LENGTH (1 MiB) → 413.
OVERSIZED = {
    "query string of 100 KB": (400, (
        b"GET /popular?exclude=" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n"
        b"Connection: close\r\n\r\n")),
    "header of 64 KB": (431, (
        b"GET /popular HTTP/1.1\r\nHost: t\r\nX-Big: " + b"y" * 65_536 + b"\r\n"
        b"Connection: close\r\n\r\n")),
    "200 headers": (431, (
        b"GET /popular HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-H%d: v\r\n" % k for k in range(200)) + b"Connection: close\r\n\r\n")),
    "body of 2 MiB": (413, (
        b"POST /recommendations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2097152\r\nConnection: close\r\n\r\n" + b" " * 2_097_152)),
}


@pytest.mark.parametrize("what", sorted(OVERSIZED))
def test_an_oversized_request_gets_a_clean_4xx_and_serving_goes_on(server: Served, what: str):
    expected, request = OVERSIZED[what]
    assert _raw(server, request) == expected, what
    after = requests.get(f"{server.base}/users/u1/recommendations?n=3", timeout=10)
    assert after.status_code == 200
    assert after.json()["model_version"] == "000000000001"


def test_the_fuzzed_server_logged_no_unhandled_error(server: Served):
    """Runs after the fuzz in this module: a 500 is logged with a traceback, none may appear."""
    text = server.log_text()
    assert "unhandled error" not in text and "Traceback" not in text, text[-3000:]
