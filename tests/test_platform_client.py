"""The notebook client: selecting a broker, every method, errors a student can act on."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from platform_support import air_quality
from sscity.platform import BrokerError, Client, embedded_broker

ENTITY = "urn:ngsi-ld:AirQualityObserved:001"


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)
    monkeypatch.delenv("SSCITY_CONTEXT_URL", raising=False)
    with Client(db=tmp_path / "city.db") as client:
        yield client


def test_broker_selection(tmp_path, monkeypatch):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)
    assert Client().embedded is embedded_broker()  # the process-wide in-memory broker
    assert Client(db=tmp_path / "a.db").embedded is Client(db=str(tmp_path / "a.db")).embedded
    assert Client(db=tmp_path / "a.db").embedded is not embedded_broker()
    monkeypatch.setenv("SSCITY_BROKER_URL", "http://127.0.0.1:1")
    assert Client().embedded is None and Client().url == "http://127.0.0.1:1"
    assert Client(db=tmp_path / "a.db").embedded is not None  # an explicit db wins over the variable
    with pytest.raises(ValueError):
        Client(url="http://x", db=tmp_path / "a.db")
    with pytest.raises(TypeError):
        Client(context={"no2": "https://example.org/no2"})


def test_entity_round_trip_in_compact_names(client):
    assert client.create(air_quality(1)) == ENTITY
    entity = client.get(ENTITY)
    assert entity["type"] == "AirQualityObserved" and entity["no2"]["value"] == 40.0
    assert client.get(ENTITY, key_values=True)["no2"] == 40.0
    assert set(client.get(ENTITY, attrs=["no2"])) == {"id", "type", "no2"}
    assert "createdAt" in client.get(ENTITY, sys_attrs=True)
    stored = client.embedded.get_entity("", ENTITY)
    assert "https://smartdatamodels.org/dataModel.Environment/no2" in stored.attrs


def test_attribute_methods(client):
    client.create(air_quality(1))
    assert client.update_attrs(ENTITY, {"no2": 41}).not_updated == []
    partial = client.update_attrs(ENTITY, {"no2": 42, "pm25": 3})
    assert partial.updated == ["no2"] and partial.not_updated[0]["attributeName"] == "pm25"
    assert client.append_attrs(ENTITY, {"pm25": 3, "pm10": 7}).updated == ["pm25", "pm10"]
    assert client.append_attrs(ENTITY, {"pm25": 9}, overwrite=False).not_updated[0]["attributeName"] == "pm25"
    client.patch_attr(ENTITY, "no2", 43)
    client.patch_attr(ENTITY, "pm10", {"value": 8, "observedAt": dt.datetime(2024, 5, 1, 9, 30)})
    client.delete_attr(ENTITY, "pm25")
    entity = client.get(ENTITY, key_values=True)
    assert (entity["no2"], entity["pm10"]) == (43, 8) and "pm25" not in entity
    assert client.get(ENTITY)["pm10"]["observedAt"] == "2024-05-01T09:30:00.000Z"
    client.delete(ENTITY)
    with pytest.raises(BrokerError):
        client.get(ENTITY)


def test_queries_paging_and_counting(client):
    result = client.batch_create([air_quality(n, no2=float(n), lon=140.0 + n * 0.001) for n in range(45)])
    assert result.ok and len(result.success) == 45
    first = client.query(type="AirQualityObserved")
    assert len(first) == 20 and first.count is None  # the broker's default page
    counted = client.query(type="AirQualityObserved", q="no2>=40", count=True)
    assert [e["no2"]["value"] for e in counted] == [40.0, 41.0, 42.0, 43.0, 44.0] and counted.count == 5
    page = client.query(type="AirQualityObserved", limit=10, offset=40, key_values=True)
    assert [e["no2"] for e in page] == [40.0, 41.0, 42.0, 43.0, 44.0]
    assert len(client.query_all(type="AirQualityObserved", page_size=8)) == 45
    assert len(client.query_all(type="AirQualityObserved", page_size=8, max_entities=10)) == 10
    assert client.count(type="AirQualityObserved") == 45
    assert client.count(type="AirQualityObserved", georel="near;maxDistance==200", geometry="Point",
                        coordinates=(140.0, 36.08)) == 3
    assert client.count(id=[ENTITY, "urn:ngsi-ld:AirQualityObserved:002"]) == 2
    assert client.count(id_pattern=r":00\d$") == 10
    assert client.types() == ["AirQualityObserved"]


def test_batches_report_success_and_errors(client):
    created = client.batch_create([air_quality(1), air_quality(2)])
    again = client.batch_create([air_quality(2), air_quality(3)])
    assert created.ok and not again.ok and again.success == ["urn:ngsi-ld:AirQualityObserved:003"]
    assert again.errors[0]["entityId"] == "urn:ngsi-ld:AirQualityObserved:002"
    with pytest.raises(BrokerError) as caught:
        again.raise_for_errors()
    assert "already exists" in str(caught.value)
    assert client.batch_upsert([air_quality(1, no2=1)], mode="update").ok
    assert client.batch_update([{"id": ENTITY, "pm25": 2}]).ok
    assert client.get(ENTITY, key_values=True)["pm25"] == 2
    missing = client.batch_delete([ENTITY, "urn:ngsi-ld:AirQualityObserved:404"])
    assert missing.errors[0]["entityId"].endswith("404")
    chunked = client.batch_upsert([air_quality(n) for n in range(10, 35)], chunk_size=10)
    assert len(chunked.success) == 25 and client.count(type="AirQualityObserved") == 27
    with pytest.raises(ValueError):
        client.batch_upsert([], mode="merge")


def test_errors_tell_what_was_wrong_and_what_to_do(client):
    client.create(air_quality(1))
    with pytest.raises(BrokerError) as caught:
        client.create(air_quality(1))
    err = caught.value
    assert (err.status, err.kind) == (409, "AlreadyExists")
    assert err.type == "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"
    assert "already exists" in err.detail and "batch_upsert" in str(err)
    with pytest.raises(BrokerError) as caught:
        client.create({"id": "station 1", "type": "AirQualityObserved"})
    assert caught.value.kind == "BadRequestData" and "URI" in str(caught.value)
    with pytest.raises(BrokerError) as caught:
        client.query(type="AirQualityObserved", q="no2>")
    assert caught.value.status == 400 and "Example" in str(caught.value)
    with pytest.raises(BrokerError) as caught:
        client.query(limit=5000)
    assert caught.value.kind == "TooManyResults" and "query_all" in str(caught.value)
    with pytest.raises(BrokerError) as caught:
        Client(db=client.embedded.store.path, tenant="nowhere").count(type="X")
    assert caught.value.kind == "NonexistentTenant"


def test_notebook_values_are_encoded(client):
    client.create({"id": "urn:x:1", "type": "T", "when": dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC),
                   "day": dt.date(2024, 5, 1), "n": np.int64(3), "x": np.float32(0.5), "v": np.array([1, 2]),
                   "stamp": pd.Timestamp("2024-05-01T09:00:00Z")})
    got = client.get("urn:x:1", key_values=True)
    assert got["when"] == "2024-05-01T09:00:00Z" and got["day"] == "2024-05-01"
    assert (got["n"], got["x"], got["v"]) == (3, 0.5, [1, 2]) and got["stamp"].startswith("2024-05-01T09:00")
    with pytest.raises(ValueError, match="NaN"):
        client.create({"id": "urn:x:2", "type": "T", "n": math.nan})
    with pytest.raises(TypeError):
        client.create({"id": "urn:x:3", "type": "T", "n": object()})


def test_inline_context_in_the_entity_is_sent_as_ld_json(client):
    context = ["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld", {"speed": "https://example.org/speed"}]
    client.create({"@context": context, "id": "urn:x:car", "type": "Car", "speed": 3})
    assert client.get("urn:x:car")["https://example.org/speed"]["value"] == 3


def test_temporal(client):
    client.create(air_quality(1, no2=10, observed_at="2024-05-01T09:00:00Z"))
    for hour, value in ((10, 20), (11, 30)):
        client.patch_attr(ENTITY, "no2", {"value": value, "observedAt": f"2024-05-01T{hour}:00:00Z"})
    history = client.temporal(ENTITY)
    assert [i["value"] for i in history["no2"]] == [10, 20, 30]
    window = client.temporal(ENTITY, timerel="between", time_at=dt.datetime(2024, 5, 1, 9, 30),
                             end_time_at="2024-05-01T11:00:00Z", temporal_values=True)
    assert window["no2"]["values"] == [[20, "2024-05-01T10:00:00.000Z"]]
    assert [i["value"] for i in client.temporal(ENTITY, last_n=1)["no2"]] == [30]
    listing = client.temporal(type="AirQualityObserved", timerel="after", time_at="2024-05-01T10:30:00Z")
    assert [i["value"] for i in listing[0]["no2"]] == [30]


def test_subscriptions_and_inbox_notifications(client):
    sub_id = client.subscribe("AirQualityObserved", watched_attributes=["no2"], q="no2>50", inbox="alerts",
                              key_values=True, attributes=["no2"], description="high NO2")
    assert sub_id.startswith("urn:ngsi-ld:Subscription:")
    client.create(air_quality(1, no2=40))
    client.patch_attr(ENTITY, "no2", 70)
    received = client.notifications("alerts")
    assert len(received) == 1 and received[0]["subscriptionId"] == sub_id
    assert received[0]["data"] == [{"id": ENTITY, "type": "AirQualityObserved", "no2": 70}]
    assert client.notifications("alerts", clear=True) and client.notifications("alerts") == []
    assert client.subscription(sub_id)["notification"]["timesSent"] == 1
    assert [s["id"] for s in client.subscriptions()] == [sub_id]
    client.unsubscribe(sub_id)
    assert client.subscriptions() == []
    with pytest.raises(ValueError):
        client.subscribe("AirQualityObserved")  # neither endpoint nor inbox


def test_subscribe_passes_triggers_and_periodic_intervals(client):
    deleted = client.subscribe("AirQualityObserved", inbox="gone", triggers="entityDeleted")
    assert client.subscription(deleted)["notificationTrigger"] == ["entityDeleted"]
    client.create(air_quality(1, no2=40))
    client.patch_attr(ENTITY, "no2", 70)
    assert client.notifications("gone") == []  # created and updated: not what it listens for
    client.delete(ENTITY)
    assert [item["id"] for item in client.notifications("gone")[0]["data"]] == [ENTITY]
    periodic = client.subscribe("AirQualityObserved", inbox="tick", interval_s=60)
    assert client.subscription(periodic)["timeInterval"] == 60


def test_tenant_prefix_gives_each_user_their_own_data_spaces(tmp_path, monkeypatch):
    """On a class's shared broker, SSCITY_TENANT_PREFIX keeps students' tenants apart."""
    db = tmp_path / "shared.db"
    monkeypatch.setenv("SSCITY_TENANT_PREFIX", "alice")
    alice = Client(db=db, tenant="a02-geo")
    assert alice.tenant == "a02-geo" and alice.tenant_header == "alice-a02-geo"
    assert "sent as 'alice-a02-geo'" in repr(alice)
    alice.create(air_quality(1))
    assert Client(db=db).tenant_header == "alice"
    monkeypatch.setenv("SSCITY_TENANT_PREFIX", "bob")
    bob = Client(db=db, tenant="a02-geo")
    with pytest.raises(BrokerError) as caught:  # bob's a02-geo is not alice's
        bob.get(ENTITY)
    assert caught.value.kind == "NonexistentTenant"
    monkeypatch.delenv("SSCITY_TENANT_PREFIX")
    assert Client(db=db, tenant="alice-a02-geo").get(ENTITY)["id"] == ENTITY
    monkeypatch.setenv("SSCITY_TENANT_PREFIX", "alice smith")
    with pytest.raises(ValueError, match="SSCITY_TENANT_PREFIX"):
        Client(db=db)


def test_inboxes_belong_to_their_tenant(tmp_path):
    """A tenant's notifications (possibly personal data) are not readable from another tenant."""
    db = tmp_path / "tenants.db"
    with Client(db=db, tenant="city") as city, Client(db=db, tenant="operator") as operator, \
            Client(db=db) as default:
        city.subscribe("AirQualityObserved", inbox="shared")
        operator.subscribe("AirQualityObserved", inbox="shared")
        city.create(air_quality(1))
        assert len(city.notifications("shared")) == 1
        assert operator.notifications("shared") == [] and default.notifications("shared") == []
        operator.create(air_quality(2))
        assert [n["data"][0]["id"] for n in operator.notifications("shared", clear=True)] == [
            "urn:ngsi-ld:AirQualityObserved:002"]
        assert len(city.notifications("shared")) == 1  # clearing one tenant's inbox leaves the other's


def test_to_dataframe_from_normalized_and_key_values(client):
    client.batch_create([air_quality(n, no2=float(n), lon=140.0 + n) for n in range(3)])
    for entities in (client.query(type="AirQualityObserved"), client.query(type="AirQualityObserved",
                                                                           key_values=True)):
        frame = client.to_dataframe(entities)
        assert list(frame.columns[:3]) == ["id", "type", "no2"]
        assert frame["no2"].tolist() == [0.0, 1.0, 2.0]
        assert frame["lon"].tolist() == [140.0, 141.0, 142.0] and frame["lat"].tolist() == [36.08] * 3


def test_query_all_pages_by_offset_when_the_broker_sends_no_next_links(client):
    import httpx

    class NoNextLinks(httpx.BaseTransport):
        """Like Orion-LD: pages exist, but no Link rel="next" header points to them."""

        def __init__(self, inner):
            self.inner = inner
            self.requests = 0

        def handle_request(self, request):
            self.requests += 1
            response = self.inner.handle_request(request)
            headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "link"]
            return httpx.Response(response.status_code, headers=headers, content=response.read(),
                                  request=request)

    client.batch_create([air_quality(n) for n in range(23)])
    transport = NoNextLinks(client._http._transport)
    client._http._transport = transport
    assert len(client.query_all(type="AirQualityObserved", page_size=10)) == 23
    assert transport.requests == 3
    assert len(client.query_all(type="AirQualityObserved", page_size=23)) == 23  # one empty page more


def test_temporal_requests_can_go_to_a_separate_service(tmp_path, monkeypatch):
    monkeypatch.setenv("SSCITY_TEMPORAL_URL", "http://mintaka.test:8080")
    assert Client(url="http://orion.test:1026")._temporal_base == "http://mintaka.test:8080"
    assert Client(db=tmp_path / "t.db")._temporal_base == ""  # the embedded broker serves history itself


def test_the_docstring_examples_run(monkeypatch):
    import doctest

    import sscity.platform
    import sscity.platform.broker
    import sscity.platform.client

    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)
    monkeypatch.setattr(sscity.platform.client, "_embedded", {})  # a fresh default broker
    for module in (sscity.platform, sscity.platform.client, sscity.platform.broker):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_for_tenant_keeps_the_broker_and_changes_only_the_tenant(tmp_path, monkeypatch):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)
    monkeypatch.delenv("SSCITY_TENANT_PREFIX", raising=False)
    with Client(db=tmp_path / "city.db", tenant="a") as first:
        assert first.for_tenant("a") is first
        second = first.for_tenant("b")
        assert second.tenant == "b" and second.embedded is first.embedded and second.context == first.context
        second.create(air_quality(1))
        first.create(air_quality(2))
        first.create(air_quality(3))
        assert first.count("AirQualityObserved") == 2 and second.count("AirQualityObserved") == 1
    remote = Client(url="http://broker.example:1026", tenant="a", timeout_s=3,
                    temporal_url="http://mintaka.example:8080")
    other = remote.for_tenant("b")
    assert (other.url, other.tenant, other.timeout_s, other._temporal_base) == (
        "http://broker.example:1026", "b", 3, "http://mintaka.example:8080")
