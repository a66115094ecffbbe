"""The broker is safe on a shared server: no request can freeze it (issue 17, Build 1).

A regular expression in ``q`` (``~=``) or ``idPattern`` runs on RE2, in time linear in the
value's length: the catastrophic ``(a+)+$`` that took 27.6 s on 29 characters with Python's
backtracking ``re`` answers at once, and costs the other clients of a server nothing.
"""

from __future__ import annotations

import gc
import json
import socket
import threading
import time
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from platform_support import COURSE_LINK, NGSI, assert_problem, http_client, start_server, stop_server
from sscity.platform import Broker, create_app
from sscity.platform.app import MAX_BODY_BYTES, MAX_URL_BYTES
from sscity.platform.client import InProcessTransport

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


@pytest.fixture(scope="module")
def server():
    proc, url = start_server(None)
    yield url
    stop_server(proc)


def _latencies_while_attacked(url: str, seconds: float) -> tuple[list[float], list]:
    """GET-by-id latencies of one client while another sends catastrophic regex queries."""
    with httpx.Client(base_url=url, headers={"Link": COURSE_LINK}, timeout=5.0) as client:
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
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                start = time.perf_counter()
                response = client.get(f"{NGSI}/entities/urn:ngsi-ld:Note:1")
                times.append(time.perf_counter() - start)
                assert response.status_code == 200
        finally:
            stop.set()
            thread.join(timeout=10)
            gc.unfreeze()
    return times, attacks


def test_a_catastrophic_regex_costs_other_clients_under_100_ms(server):
    url = server
    with httpx.Client(base_url=url, headers={"Link": COURSE_LINK}, timeout=5.0) as client:
        assert client.post(f"{NGSI}/entities", json=_text_entity(0, "a" * 2000 + "!")).status_code == 201
        assert client.post(f"{NGSI}/entities", json=_text_entity(1, "hello")).status_code == 201
    # Backtracking would hold every request for seconds (27.6 s for 29 characters before RE2).
    # On a loaded 2-core machine the operating system alone can pause the server for 100 ms
    # now and then, so one window with a pause is measured again; a regex that blocks fails
    # both windows.
    for _ in range(2):
        times, attacks = _latencies_while_attacked(url, 1.5)
        assert attacks and set(attacks) == {200}, attacks[:5]
        assert len(times) >= 10, len(times)
        if max(times) < 0.1:
            break
    assert max(times) < 0.1, (len(times), sorted(times)[-5:])


# -- request size ------------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413_announced_or_chunked():
    broker = Broker(":memory:")
    try:
        app = create_app(broker, max_body_bytes=1000)
        with httpx.Client(base_url="http://broker.test", transport=InProcessTransport(app),
                          headers={"Link": COURSE_LINK, "Content-Type": "application/json"}) as client:
            big = b'{"id": "urn:ngsi-ld:T:1", "type": "T", "n": "' + b"x" * 1000 + b'"}'
            body = assert_problem(client.post(f"{NGSI}/entities", content=big), 413, "InvalidRequest")
            assert "1,000 bytes" in body["detail"] and body["title"] == "Payload too large"
            chunked = client.post(f"{NGSI}/entities", content=iter([big[:600], big[600:]]))
            assert_problem(chunked, 413, "InvalidRequest")
            small = b'{"id": "urn:ngsi-ld:T:1", "type": "T"}'
            assert client.post(f"{NGSI}/entities", content=small).status_code == 201
            assert app.state.broker is broker  # the wrapper shows the Starlette app's attributes
    finally:
        broker.close()


def test_a_url_over_the_limit_is_a_414(notes):
    response = notes.get(f"{NGSI}/entities?type=Note&q=" + "a" * MAX_URL_BYTES)
    body = assert_problem(response, 414, "InvalidRequest")
    assert f"{MAX_URL_BYTES:,}" in body["detail"]
    assert notes.get(f"{NGSI}/entities?type=Note&q=s~=" + "a" * 100).status_code == 200


def _raw_request(url: str, head: bytes, body: bytes = b"") -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def test_over_http_a_huge_url_is_a_414_and_a_huge_body_a_413_not_a_reset(server):
    long_url = b"/ngsi-ld/v1/entities?q=" + b"a" * 200_000  # over httpx's own limit: a raw socket
    reply = _raw_request(server, b"GET " + long_url + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 414 "), reply[:200]
    assert b"application/problem+json" in reply
    # 413 comes from the Content-Length alone: the server answers before the body is sent
    head = (f"POST /ngsi-ld/v1/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {200 * MAX_BODY_BYTES}\r\n\r\n").encode()
    reply = _raw_request(server, head)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert httpx.get(f"{server}/actuator/health").status_code == 200


# -- no 500 on any input -----------------------------------------------------------------

FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
QUERY_PATHS = ["/entities", "/entities/urn:ngsi-ld:Note:0", "/temporal/entities",
               "/temporal/entities/urn:ngsi-ld:Note:0", "/subscriptions", "/types", "/types/Note",
               "/attributes", "/attributes/n", "/jsonldContexts"]
PARAM_NAMES = ["type", "id", "idPattern", "q", "attrs", "limit", "offset", "count", "georel", "geometry",
               "coordinates", "timerel", "timeAt", "lastN", "pick", "omit", "lang", "options", "format",
               "details", "kind", "scopeQ"]
# any character, lone surrogates included (and drawn often, never as a pair: they once gave 500s)
any_text = st.tuples(st.text(st.characters(exclude_categories=()), max_size=20),
                     st.sampled_from(["", "", "\ud800!", "!\udfff"])).map("".join)
huge_numbers = st.sampled_from(["99999999999999999999", "-1", "1e999", "NaN", "0x10", "٣", "9" * 5000,
                                "9223372036854775808", " 5", "+5", ""])
param_values = huge_numbers | any_text | st.sampled_from(['s~="(a+)+$"', "s~=(?=a)", "no2>1e400",
                                                          "near;maxDistance==1e999", "[1e999,2]", "Point"])
bodies = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80) | any_text
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=10)


def _encode(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _assert_answered(response, elapsed: float) -> None:
    # 501 is the broker's deliberate answer to a feature it lacks (never a failure): allowed.
    assert response.status_code < 500 or (
        response.status_code == 501 and response.json()["type"].endswith("/OperationNotSupported")), \
        response.text
    assert elapsed < 1.0, elapsed
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.headers
        assert response.json()["detail"]


@FUZZ
@given(st.sampled_from(QUERY_PATHS), st.dictionaries(st.sampled_from(PARAM_NAMES), param_values, max_size=5),
       st.fixed_dictionaries({}, optional={name: huge_numbers for name in ("limit", "offset", "lastN")}))
def test_fuzzed_query_parameters_never_get_a_5xx(notes, path, params, paging):
    params.update(paging)
    query = "&".join(f"{_encode(name)}={_encode(value)}" for name, value in params.items())
    start = time.perf_counter()
    response = notes.get(f"{NGSI}{path}?{query}")
    _assert_answered(response, time.perf_counter() - start)


@FUZZ
@given(st.sampled_from(["/entities", "/entityOperations/upsert", "/entities/urn:ngsi-ld:Note:0/attrs",
                        "/temporal/entities", "/subscriptions", "PATCH /entities/urn:ngsi-ld:Note:0",
                        "PUT /entities/urn:ngsi-ld:Note:0", "PUT /entities/urn:ngsi-ld:Note:0/attrs/n",
                        "/entityOperations/query", "/entityOperations/merge", "/jsonldContexts"]),
       st.fixed_dictionaries({"id": st.just("urn:ngsi-ld:Note:9") | st.just("urn:ngsi-ld:Note:9") | any_text,
                              "type": st.just("Note") | st.just("Note") | bodies,
                              "n": st.fixed_dictionaries({"type": st.just("Property"), "value": bodies})},
                             optional={"s": bodies}),
       st.sampled_from([0] * 6 + [1, 50, 5000]))
def test_fuzzed_bodies_never_get_a_5xx(notes, path, entity, depth):
    document = [entity] if path.endswith(("upsert", "merge")) else entity
    text = "[" * depth + json.dumps(document, allow_nan=True) + "]" * depth
    start = time.perf_counter()
    method, _, path = path.rpartition(" ")
    method = method or ("PATCH" if path.endswith("/attrs") else "POST")
    response = notes.request(method, f"{NGSI}{path}", content=text.encode("utf-8", "surrogatepass"),
                             headers={"Content-Type": "application/json"})
    _assert_answered(response, time.perf_counter() - start)
    notes.delete(f"{NGSI}/entities/urn:ngsi-ld:Note:9")


@pytest.mark.parametrize("body, says", [
    (b'{"id": "urn:ngsi-ld:T:1", "type": "T\\ud800"}', "lone surrogate"),
    (b'{"id": "urn:ngsi-ld:T:1", "type": "T", "n": {"type": "Property", "value": NaN}}', "NaN"),
    (b'{"id": "urn:ngsi-ld:T:1", "type": "T", "n": {"type": "Property", "value": 1e999}}', "too large"),
    (b'{"id": "urn:ngsi-ld:T:1", "type": "T\xed\xa0\x80"}', "not valid UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
])
def test_bad_bodies_are_400s_that_say_what_to_fix(notes, body, says):
    response = notes.post(f"{NGSI}/entities", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert says in response.json()["detail"]


@pytest.mark.parametrize("query", ["offset=99999999999999999999", "limit=-1", "offset=abc",
                                   "offset=9223372036854775808", "limit=1e3"])
def test_bad_paging_is_a_400_that_says_the_range(notes, query):
    body = assert_problem(notes.get(f"{NGSI}/entities?type=Note&{query}"), 400, "BadRequestData")
    assert "must be a whole number from 0 to" in body["detail"]


def test_the_serve_command_takes_its_body_limit_from_the_command_line():
    proc, url = start_server(None, extra_args=("--max-body", "2000"))
    try:
        small = {"id": "urn:ngsi-ld:Note:small", "type": "Note",
                 "text": {"type": "Property", "value": "x" * 100}}
        large = {"id": "urn:ngsi-ld:Note:large", "type": "Note",
                 "text": {"type": "Property", "value": "x" * 5000}}
        headers = {"Content-Type": "application/json", "Link": COURSE_LINK}
        assert httpx.post(f"{url}{NGSI}/entities", json=small, headers=headers).status_code == 201
        refused = httpx.post(f"{url}{NGSI}/entities", json=large, headers=headers)
        assert refused.status_code == 413
    finally:
        stop_server(proc)
