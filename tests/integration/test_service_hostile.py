"""Hostile requests against a real `keel serve` (uvicorn) process: each gets a clear 4xx, and the service stays up.

Every case is bounded: bodies are built in memory once, sockets have timeouts, and slow-loris connections are
closed by the test. After each case `/health` must answer, and the server log must hold no traceback.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.serving_helpers import Server, running_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

JSON = {"content-type": "application/json"}
BODY_LIMIT = 8 * 1024 * 1024
BODY_TIMEOUT = 10.0
"""The service's wait for the rest of a started body (``keel.serving.body.BODY_TIMEOUT_SECONDS``)."""


@pytest.fixture(scope="module")
def server(adult_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("hostile") / "serve.log"
    with running_server(adult_workspace, log, "--poll-interval", "0") as running:
        yield running
    assert "Traceback" not in running.output(), running.output()


@pytest.fixture(scope="module")
def example(server: Server) -> dict[str, Any]:
    with server.client() as http:
        return dict(http.get("/v1/model").json()["feature_schema"]["example"])


def post(server: Server, content: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    with server.client() as http:
        return http.post("/v1/predict", content=content, headers=JSON if headers is None else headers)


def assert_client_error(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    """A JSON error document with the status, a request id and an ``error`` sentence holding ``words``."""
    assert response.status_code == status, response.text[:500]
    document = response.json()
    assert set(document) == {"error", "detail", "request_id"}, document
    for word in words:
        assert word in response.text[:2000], (word, response.text[:500])
    return dict(document)


def assert_healthy(server: Server) -> None:
    assert server.process.poll() is None, server.output()
    with server.client() as http:
        assert http.get("/health").json() == {"status": "alive"}
        assert http.get("/ready").status_code == 200


def test_deeply_nested_json_is_400(server: Server) -> None:
    for text in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
        assert_client_error(post(server, text), 400, "not valid JSON", "recursion")
    assert_healthy(server)


def test_a_50_mb_body_is_413_whether_its_length_is_declared_or_streamed(server: Server) -> None:
    assert_client_error(post(server, b" " * 50_000_000), 413, "limit")

    def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length to refuse up front
        for _ in range(50):
            yield b" " * 1_000_000

    assert_client_error(post(server, chunks()), 413, "limit")
    assert_healthy(server)


def test_100000_records_are_refused(server: Server, example: dict[str, Any]) -> None:
    full = json.dumps({"records": [example] * 100_000})
    assert len(full) > BODY_LIMIT
    assert_client_error(post(server, full), 413, "limit")
    small = json.dumps({"records": [{"age": 1}] * 100_000})
    assert len(small) < BODY_LIMIT
    document = assert_client_error(post(server, small), 422, "10000")
    assert document["detail"][0]["field"] == "records"
    assert_healthy(server)


def test_huge_strings_are_422_and_not_echoed(server: Server, example: dict[str, Any]) -> None:
    huge_value = post(server, json.dumps({**example, "workclass": "x" * 5_000_000}))
    document = assert_client_error(huge_value, 422, "workclass", "at most 1000 characters")
    assert len(huge_value.content) < 2_000
    huge_key = post(server, json.dumps({**example, "k" * 1_000_000: 1}))
    document = assert_client_error(huge_key, 422, "unknown field")
    assert len(huge_key.content) < 5_000, document
    assert_healthy(server)


def test_invalid_utf8_and_lone_surrogates_are_refused(server: Server, example: dict[str, Any]) -> None:
    assert_client_error(post(server, b'{"age": "\xff\xfe"}'), 400, "not valid JSON", "utf-8")
    text = json.dumps({**example, "workclass": "\ud800"})  # valid JSON, but not a valid unicode string
    assert_client_error(post(server, text), 422, "workclass")
    assert_healthy(server)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309", "-1e309"])
def test_non_finite_numbers_are_422(server: Server, example: dict[str, Any], literal: str) -> None:
    text = json.dumps({**example, "capital_gain": 0}).replace('"capital_gain": 0', f'"capital_gain": {literal}')
    document = assert_client_error(post(server, text), 422, "finite")
    assert document["detail"][0]["field"] == "capital_gain"


def test_negative_zero_is_scored_like_zero(server: Server, example: dict[str, Any]) -> None:
    zero = post(server, json.dumps({**example, "capital_gain": 0.0}))
    negative = post(server, json.dumps({**example, "capital_gain": -0.0}))
    assert zero.status_code == negative.status_code == 200, negative.text
    assert negative.json()["probabilities"] == zero.json()["probabilities"]


def test_numbers_sent_as_strings_are_422(server: Server, example: dict[str, Any]) -> None:
    document = assert_client_error(post(server, json.dumps({**example, "age": "39"})), 422, "valid number")
    assert document["detail"][0]["field"] == "age"


def test_duplicate_keys_are_400(server: Server, example: dict[str, Any]) -> None:
    text = json.dumps(example)[:-1] + ', "age": "thirty"}'  # parsers disagree on which "age" wins: refuse both
    assert_client_error(post(server, text), 400, "repeats the key 'age'")
    nested = '{"records": [' + json.dumps(example) + '], "records": []}'
    assert_client_error(post(server, nested), 400, "repeats the key 'records'")


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}, {}],
    ids=["text-plain", "form", "none"],
)
def test_a_body_not_declared_as_json_is_415(server: Server, example: dict[str, Any], headers: dict[str, str]) -> None:
    assert_client_error(post(server, json.dumps(example), headers=headers), 415, "application/json")
    charset = post(server, json.dumps(example), headers={"content-type": "application/json; charset=utf-8"})
    assert charset.status_code == 200


def _raw(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    connection = socket.create_connection((host, int(port)), timeout=BODY_TIMEOUT + 20)
    return connection


def test_a_stalled_body_gets_408_and_other_clients_are_served_meanwhile(server: Server) -> None:
    stalled = _raw(server)
    idle: list[socket.socket] = []
    try:
        started = time.monotonic()
        stalled.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 5000\r\n\r\n{"age": 3'
        )
        # Slow-loris connections that never finish their headers hold a socket each, not the event loop.
        for _ in range(20):
            connection = _raw(server)
            connection.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
            idle.append(connection)
        assert_healthy(server)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = stalled.recv(65536)
            if not chunk:
                break
            answer += chunk
        waited = time.monotonic() - started
    finally:
        for connection in [stalled, *idle]:
            connection.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert "did not arrive within" in json.loads(body)["error"]
    assert BODY_TIMEOUT - 1 <= waited < BODY_TIMEOUT + 15
    assert_healthy(server)
