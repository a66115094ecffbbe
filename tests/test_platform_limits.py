"""The broker is safe on a shared server: no request can freeze it (issue 17, Build 1).

A regular expression in ``q`` (``~=``) or ``idPattern`` runs on RE2, in time linear in the
value's length: the catastrophic ``(a+)+$`` that took 27.6 s on 29 characters with Python's
backtracking ``re`` answers at once, and costs the other clients of a server nothing.
"""

from __future__ import annotations

import gc
import threading
import time

import httpx
import pytest
from platform_support import COURSE_LINK, NGSI, assert_problem, http_client, start_server, stop_server
from sscity.platform import Broker

CATASTROPHIC = '(a+)+$'
LONG_A = "a" * 40 + "!"  # Python's re: about 2**40 steps; RE2: 41


def _text_entity(n: int, text: str) -> dict:
    return {"id": f"urn:ngsi-ld:Note:{n}", "type": "Note", "s": {"type": "Property", "value": text}}


@pytest.fixture(scope="module")
def notes():
    broker = Broker(":memory:")
    with http_client(broker, Link=COURSE_LINK) as client:
        for n, text in enumerate([LONG_A, "a" * 29 + "b", "aaa"]):
            assert client.post(f"{NGSI}/entities", json=_text_entity(n, text)).status_code == 201
        assert client.post(f"{NGSI}/entities",
                           json={"id": "urn:ngsi-ld:Note:" + LONG_A.replace("!", "x"), "type": "Note"}
                           ).status_code == 201
        yield client
    broker.close()


def test_a_catastrophic_q_regex_answers_at_once(notes):
    start = time.perf_counter()
    response = notes.get(f"{NGSI}/entities", params={"type": "Note", "q": f's~="{CATASTROPHIC}"'})
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()] == ["urn:ngsi-ld:Note:2"]  # only "aaa" ends in a's
    assert elapsed < 0.5, elapsed
    response = notes.get(f"{NGSI}/entities", params={"type": "Note", "q": f's!~="{CATASTROPHIC}"'})
    assert sorted(e["id"] for e in response.json()) == ["urn:ngsi-ld:Note:0", "urn:ngsi-ld:Note:1"]


def test_a_catastrophic_id_pattern_answers_at_once(notes):
    start = time.perf_counter()
    response = notes.get(f"{NGSI}/entities", params={"type": "Note",
                                                     "idPattern": "^urn:ngsi-ld:Note:(a+)+!$"})
    assert time.perf_counter() - start < 0.5
    assert response.status_code == 200 and response.json() == []
    response = notes.get(f"{NGSI}/entities", params={"type": "Note",
                                                     "idPattern": "^urn:ngsi-ld:Note:(a+)+x$"})
    assert len(response.json()) == 1


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)a", "(?!b)a", "(?<=a)a", "(?<!b)a"])
def test_backtracking_features_are_refused_with_a_clear_400(notes, pattern):
    for params in ({"type": "Note", "q": f"s~={pattern}"}, {"type": "Note", "idPattern": pattern}):
        body = assert_problem(notes.get(f"{NGSI}/entities", params=params), 400, "BadRequestData")
        assert "linear-time regex engine does not support" in body["detail"], body
    subscription = {"type": "Subscription", "entities": [{"type": "Note", "idPattern": pattern}],
                    "notification": {"endpoint": {"uri": "sscity-inbox:x"}}}
    body = assert_problem(notes.post(f"{NGSI}/subscriptions", json=subscription), 400, "BadRequestData")
    assert "linear-time regex engine" in body["detail"], body


def test_an_invalid_or_surrogate_pattern_is_a_400(notes):
    for pattern in ["(", "a" * 5000]:
        response = notes.get(f"{NGSI}/entities", params={"type": "Note", "idPattern": pattern})
        assert_problem(response, 400, "BadRequestData")
    # an encoded lone surrogate (invalid UTF-8) in the query string: no server error
    response = notes.get(f"{NGSI}/entities?type=Note&idPattern=%ED%A0%80")
    assert response.status_code in (200, 400), response.text


def test_a_catastrophic_regex_costs_other_clients_under_100_ms():
    proc, url = start_server(None)
    try:
        with httpx.Client(base_url=url, headers={"Link": COURSE_LINK}, timeout=5.0) as client:
            assert client.post(f"{NGSI}/entities", json=_text_entity(0, "a" * 2000 + "!")).status_code == 201
            assert client.post(f"{NGSI}/entities", json=_text_entity(1, "hello")).status_code == 201
            stop = threading.Event()
            attacks = []

            def attack():
                with httpx.Client(base_url=url, headers={"Link": COURSE_LINK}, timeout=5.0) as attacker:
                    while not stop.is_set():
                        try:
                            attacks.append(attacker.get(f"{NGSI}/entities", params={
                                "type": "Note", "q": f's~="{CATASTROPHIC}"'}).status_code)
                        except httpx.TimeoutException:
                            attacks.append("timeout")

            thread = threading.Thread(target=attack, daemon=True)
            thread.start()
            times = []
            gc.collect()
            gc.freeze()  # a collection of the test process's own objects is not the server's delay
            try:
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:
                    start = time.perf_counter()
                    response = client.get(f"{NGSI}/entities/urn:ngsi-ld:Note:1")
                    times.append(time.perf_counter() - start)
                    assert response.status_code == 200
            finally:
                stop.set()
                thread.join(timeout=10)
                gc.unfreeze()
        assert attacks and set(attacks) == {200}, attacks[:5]
        assert len(times) >= 10 and max(times) < 0.1, (len(times), max(times))
    finally:
        stop_server(proc)
