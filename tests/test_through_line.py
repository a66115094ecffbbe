"""The through-line of issue 15: datasets -> edge gateway -> platform -> read back, same numbers.

The city is seeded once (embedded broker on a temporary file) and read back from the
platform; every number read back must equal what the module computes on its own from the
dataset, and the published survey figures (1,481 respondents, mean happiness 6.94,
``datasets/qol-published``) must come out of the district aggregates on the platform.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sscity.city import (
    DEFAULT_DAY,
    campus_day_messages,
    district_wellbeing,
    facility_nodes,
    read_wellbeing,
    seed_city,
    wellbeing_entities,
)
from sscity.cli import main
from sscity.data import dataset_path, load_city_sensors, load_survey
from sscity.data.neighbourhoods import make_neighbourhood
from sscity.data.tsukuba import BY_CODE
from sscity.mobility.routing import accessible_route, find_node, load_sidewalks, shortest_route
from sscity.platform import BrokerError, Client
from sscity.sensing.payload import unpack_reading

TENANT = "t1-through-line"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _japanese(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("city") / "city.db"


@pytest.fixture(scope="module")
def seeded(db):
    client = Client(db=db, tenant=TENANT)
    summary = seed_city(client, tenant=TENANT, progress=False)
    return client, summary


@pytest.fixture(scope="module")
def graph():
    return load_sidewalks()


def _neighbourhood_places():
    return sum(d["kind"] != "home" for code in BY_CODE for _, d in make_neighbourhood(code).nodes(data=True))


def test_summary_counts_every_type(seeded):
    _, summary = seeded
    stations = pd.read_csv(dataset_path("campus-sensors", "stations.csv"))
    points = load_city_sensors("crowd_flow")["point_id"].nunique()
    assert summary.counts == {
        "DistrictWellbeing": 6,
        "AirQualityObserved": len(stations),
        "NoiseLevelObserved": len(stations),
        "CrowdFlowObserved": len(stations) + points,  # gateway stations + module 02's crowd points
        # module 02's facilities + the neighbourhoods' places (clinic, community centre, ...)
        "PublicFacility": len(load_city_sensors("facilities")) + _neighbourhood_places(),
        "SidewalkSegment": sum(make_neighbourhood(code).number_of_edges() for code in BY_CODE),
    }
    assert summary.suppressed == []
    assert summary.gateway["stored"] == summary.gateway["received"] > 0
    assert summary.gateway.get("dead_lettered", 0) == 0


def test_district_means_from_platform_equal_the_survey_module(seeded):
    client, _ = seeded
    from sscity.survey import group_estimates

    survey = load_survey(2019)
    survey["district_code"] = survey["district_code"].astype(str)
    expected = group_estimates(survey, "district_code", "happiness", weights="design_weight").sort_index()
    back = read_wellbeing(client)
    assert list(back.index) == list(expected.index)
    assert back["estimate"].tolist() == expected["estimate"].tolist()  # exact: JSON keeps the float
    assert back["se"].tolist() == expected["se"].tolist()
    assert back["n"].tolist() == expected["n"].tolist()
    # and against numpy, which nobody here wrote
    for code, row in back.iterrows():
        cell = survey[survey["district_code"] == code]
        assert row["estimate"] == pytest.approx(np.average(cell["happiness"], weights=cell["design_weight"]),
                                                abs=1e-12)


def test_platform_aggregates_reproduce_the_published_headline(seeded):
    client, _ = seeded
    back = read_wellbeing(client)
    published = pd.read_csv(dataset_path("qol-published", "happiness_2019_headline.csv")).set_index("measure")
    assert back["n"].sum() == published.loc["respondents", "value"] == 1481
    # design weights are constant within a district, so n-weighted district means give the raw mean
    raw_mean = float((back["n"] * back["estimate"]).sum() / back["n"].sum())
    assert round(raw_mean, 2) == published.loc["mean_happiness", "value"] == 6.94
    # the deck's centre-against-periphery question, read from the platform
    assert set(back["area_type"]) == {"centre", "periphery"}


def test_sensor_entities_equal_the_decoded_frames(seeded):
    client, _ = seeded
    messages, _, _ = campus_day_messages(DEFAULT_DAY)
    last = {}
    for _, frame in messages:  # in time order: the last frame of a station is what the entity holds
        reading = unpack_reading(frame)
        last[reading["station_id"]] = reading
    air, noise = ({e["id"].rsplit(":", 1)[-1]: e for e in client.query_all(type=kind, key_values=True)}
                  for kind in ("AirQualityObserved", "NoiseLevelObserved"))
    assert len(last) == len(air) == 40
    for station, reading in last.items():
        entity = air[str(station)]
        assert entity["temperature"] == reading["temperature_c"]
        assert entity["relativeHumidity"] == round(reading["humidity_pct"] / 100, 6)
        assert entity["pm25"] == reading["pm25_ugm3"]
        assert noise[str(station)]["LAeq"] == reading["noise_dba"]
        people = client.get(f"urn:ngsi-ld:CrowdFlowObserved:{station}", key_values=True)["peopleCount"]
        assert people == reading["people_count"]


def test_sensor_values_equal_the_dataset(seeded):
    client, _ = seeded
    readings = pd.read_csv(dataset_path("campus-sensors", "readings.csv"))
    row = readings[readings["station_id"] == "cs-21"]
    row = row[row["time"] == "2025-06-19T14:50:00Z"].iloc[0]  # 23:50 JST, the day's last reading
    entity = client.get("urn:ngsi-ld:AirQualityObserved:21", key_values=True)
    assert entity["dateObserved"] == "2025-06-19T14:50:00Z"
    assert entity["temperature"] == pytest.approx(row["temperature_c"], abs=0.005)  # frame: 0.01 degC
    assert entity["pm25"] == pytest.approx(row["pm25_ugm3"], abs=0.05)
    assert entity["location"]["coordinates"] == pytest.approx([140.1, 36.08], abs=0.05)


def _nearest_from_dataset(graph, lon, lat):
    """Nearest node by the equirectangular distance, computed here from the dataset's coordinates."""
    scale = math.cos(math.radians(lat))
    return min(graph.nodes, key=lambda n: ((graph.nodes[n]["lon"] - lon) * scale) ** 2
               + (graph.nodes[n]["lat"] - lat) ** 2)


def test_route_to_a_facility_read_from_the_platform_equals_the_dataset_route(seeded, graph):
    client, _ = seeded
    near = facility_nodes(client, graph, max_distance_m=150)
    assert 0 < len(near) < 40  # the network covers the station and the campus, not the city
    assert (near["distance_m"] <= 150).all()
    facilities = load_city_sensors("facilities").set_index("facility_id")
    origin = find_node(graph, "Tsukuba Station (TX) concourse")
    for row in near.itertuples():
        source = facilities.loc[row.facility_id]
        assert (row.lon, row.lat) == (source["lon"], source["lat"])
        node = _nearest_from_dataset(graph, source["lon"], source["lat"])
        assert row.node == node
        assert shortest_route(graph, origin, row.node) == shortest_route(graph, origin, node)
    route = accessible_route(graph, origin, near.iloc[0]["node"], "manual_wheelchair")
    assert route.nodes[0] == origin and route.nodes[-1] == near.iloc[0]["node"]


def test_facility_nodes_refuses_a_bad_distance(seeded, graph):
    client, _ = seeded
    with pytest.raises(ValueError, match="max_distance_m") as err:
        facility_nodes(client, graph, max_distance_m=-1)
    assert _japanese(str(err.value))


def _snapshot(client):
    kinds = ("DistrictWellbeing", "AirQualityObserved", "NoiseLevelObserved", "CrowdFlowObserved",
             "PublicFacility", "SidewalkSegment")
    return {kind: sorted(client.query_all(type=kind), key=lambda e: e["id"]) for kind in kinds}


def _history(client):
    # Without instanceId: seeding again deletes and rewrites the entities, and a rewritten
    # instance is a new instance with a new id (ids are never reused, so none names two).
    instances = client.temporal("urn:ngsi-ld:AirQualityObserved:21", attrs="temperature")["temperature"]
    return [{key: value for key, value in item.items() if key != "instanceId"} for item in instances]


def test_seeding_again_changes_nothing(seeded):
    client, summary = seeded
    before, history = _snapshot(client), _history(client)
    assert len(history) == 144  # one day of 10-minute readings
    again = seed_city(client, tenant=TENANT, progress=False)
    assert again.counts == summary.counts
    assert _snapshot(client) == before
    assert _history(client) == history  # not doubled


def test_small_cells_are_not_on_the_platform(db):
    tenant = "t1-small-cells"
    survey = load_survey(2019)
    counts = survey.groupby("district_code", observed=True).size()
    k = 235  # above Tsukuba (228) and Oho (233), below the others
    earlier, _ = district_wellbeing(survey, k=10)  # an earlier seeding published all six
    Client(db=db, tenant=tenant).batch_upsert(wellbeing_entities(earlier)).raise_for_errors()
    summary = seed_city(Client(db=db, tenant=tenant), tenant=tenant, k=k, progress=False)
    small = sorted(str(code) for code, n in counts.items() if n < k)
    assert small == ["oho", "tsukuba"] == summary.suppressed
    client = Client(db=db, tenant=tenant)
    assert summary.counts["DistrictWellbeing"] == client.count(type="DistrictWellbeing") == 4
    back = read_wellbeing(client)
    assert not set(small) & set(back.index)
    assert (back["n"] >= k).all()
    for code in small:
        with pytest.raises(BrokerError) as err:
            client.get(f"urn:ngsi-ld:DistrictWellbeing:2019:{code}")
        assert err.value.status == 404
    assert client.count(type="DistrictWellbeing", q="respondents<235") == 0


def test_district_wellbeing_suppresses_before_estimating():
    survey = load_survey(2019)
    table, suppressed = district_wellbeing(survey, k=10_000)
    assert table.empty and len(suppressed) == 6


def test_unreachable_broker_gives_a_bilingual_error():
    with pytest.raises(RuntimeError) as err:
        seed_city(Client(url=UNREACHABLE), tenant=TENANT, progress=False)
    message = str(err.value)
    assert UNREACHABLE in message and "sscity platform serve" in message and _japanese(message)


def test_cli_bad_url_exits_2_bilingual(capsys):
    assert main(["city", "seed", "--url", UNREACHABLE, "--tenant", TENANT]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sscity: Cannot seed the city") and _japanese(err)


@pytest.mark.parametrize("kwargs, word", [({"k": 0}, "k must"), ({"k": True}, "k must"),
                                          ({"day": "2024-01-01"}, "No campus-sensor readings"),
                                          ({"day": "tomorrow"}, "day must")])
def test_bad_arguments_are_refused_bilingually(db, kwargs, word):
    tenant = "t1-refused"
    with pytest.raises(ValueError, match=word) as err:
        seed_city(Client(db=db, tenant=tenant), tenant=tenant, progress=False, **kwargs)
    assert _japanese(str(err.value))
    with pytest.raises(BrokerError) as missing:  # nothing was written: the tenant was never made
        Client(db=db, tenant=tenant).count(type="DistrictWellbeing")
    assert missing.value.status == 404


def test_cli_seeds_the_embedded_broker(monkeypatch, capsys):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)
    monkeypatch.delenv("SSCITY_TENANT_PREFIX", raising=False)
    assert main(["city", "seed", "--tenant", "t1-cli"]) == 0
    out = capsys.readouterr().out
    assert "DistrictWellbeing: 6" in out and f"PublicFacility: {40 + _neighbourhood_places()}" in out
    assert "SidewalkSegment: " in out and "lost" in out
    assert Client(tenant="t1-cli").count(type="DistrictWellbeing") == 6
