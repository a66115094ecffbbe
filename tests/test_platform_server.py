"""The broker as a real HTTP server (``sscity platform serve``): loopback HTTP, restarts, env var."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from platform_support import COURSE_LINK, NGSI, ROOT, air_quality, assert_problem, start_server, stop_server
from sscity.platform import BrokerError, Client

pytestmark = pytest.mark.slow  # each test starts uvicorn in a subprocess


@pytest.fixture
def server(tmp_path):
    proc, url = start_server(tmp_path / "city.db")
    yield url
    stop_server(proc)


def test_over_loopback_http_with_headers(server):
    with httpx.Client(base_url=server, headers={"Link": COURSE_LINK}) as http:
        created = http.post(f"{NGSI}/entities/", json=air_quality(1))
        assert created.status_code == 201
        assert created.headers["Location"] == f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001"
        got = http.get(created.headers["Location"])
        assert got.status_code == 200 and got.headers["content-type"] == "application/json"
        assert got.headers["Link"] == COURSE_LINK and got.json()["no2"]["value"] == 40.0
        params = {"type": "AirQualityObserved", "limit": 0, "count": "true"}
        counted = http.get(f"{NGSI}/entities", params=params)
        assert counted.json() == [] and counted.headers["NGSILD-Results-Count"] == "1"
        broken = http.post(f"{NGSI}/entities", content=b"{oops", headers={"Content-Type": "application/json"})
        assert_problem(broken, 400, "InvalidRequest")
        assert http.get("/version").status_code == 200
        assert http.get("/actuator/health").json()["status"] == "UP"


def test_the_client_by_url_and_by_environment_variable(server, monkeypatch):
    with Client(url=server) as client:
        assert client.embedded is None
        client.batch_upsert([air_quality(n, no2=n) for n in range(30)])
        assert client.count(type="AirQualityObserved", q="no2>=10") == 20
        assert len(client.query_all(type="AirQualityObserved", page_size=7)) == 30
        with pytest.raises(BrokerError) as caught:
            client.get("urn:ngsi-ld:AirQualityObserved:999")
        assert caught.value.status == 404 and caught.value.kind == "ResourceNotFound"
        client.subscribe("AirQualityObserved", inbox="over-http", q="no2>100")
        client.patch_attr("urn:ngsi-ld:AirQualityObserved:005", "no2", 150)
        assert client.notifications("over-http")[0]["data"][0]["no2"]["value"] == 150
    monkeypatch.setenv("SSCITY_BROKER_URL", server)
    with Client() as client:
        assert client.url == server and client.count(type="AirQualityObserved") == 30


def test_data_persists_across_restarts(tmp_path):
    path = tmp_path / "kept.db"
    proc, url = start_server(path)
    try:
        with Client(url=url, tenant="tsukuba") as client:
            client.create(air_quality(1))
            client.patch_attr("urn:ngsi-ld:AirQualityObserved:001", "no2",
                              {"value": 55, "observedAt": "2024-05-01T10:00:00Z"})
            client.subscribe("AirQualityObserved", inbox="kept",
                             subscription_id="urn:ngsi-ld:Subscription:kept")
    finally:
        stop_server(proc)
    proc, url = start_server(path)
    try:
        with Client(url=url, tenant="tsukuba") as client:
            assert client.get("urn:ngsi-ld:AirQualityObserved:001", key_values=True)["no2"] == 55
            history = client.temporal("urn:ngsi-ld:AirQualityObserved:001", temporal_values=True)
            assert [pair[0] for pair in history["no2"]["values"]] == [40.0, 55]
            assert client.subscription("urn:ngsi-ld:Subscription:kept")["status"] == "active"
            near = client.query(georel="near;maxDistance==50", geometry="Point", coordinates=[140.11, 36.08])
            assert len(near) == 1  # the R*Tree survived too
        with Client(url=url) as default_tenant:
            assert default_tenant.count(type="AirQualityObserved") == 0
    finally:
        stop_server(proc)


def test_a_client_without_a_broker_gets_a_clear_error():
    with Client(url="http://127.0.0.1:9") as client:  # the discard port: nothing listens
        with pytest.raises(BrokerError) as caught:
            client.count(type="AirQualityObserved")
    assert caught.value.status is None
    assert "sscity platform serve" in str(caught.value)


def test_cli_help_and_argument_errors():
    env = {key: value for key, value in os.environ.items() if key != "SSCITY_BROKER_URL"}
    done = subprocess.run([sys.executable, "-m", "sscity", "platform", "serve", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--db" in done.stdout and "--memory" in done.stdout
    done = subprocess.run([sys.executable, "-m", "sscity", "platform", "serve", "--db", "x.db", "--memory"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not both" in done.stderr
