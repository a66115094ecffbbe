"""Round trip with ngsildclient 0.5.2, a third-party NGSI-LD client, against the course broker.

ngsildclient pins httpx<0.24, so it lives in its own environment; run this file with that
environment's interpreter (tests/test_platform_thirdparty.py does)::

    /tmp/ngsild-venv/bin/python tests/thirdparty/ngsildclient_roundtrip.py 127.0.0.1 1026

It creates, reads, queries, pages, counts and deletes entities with ngsildclient's
synchronous Client, in a tenant that ngsildclient creates its own way, and prints one
line starting with OK. Any mismatch raises an AssertionError (exit status 1).
"""

import sys
from datetime import UTC, datetime

from ngsildclient import Client, Entity

STATIONS = 250  # more than ngsildclient's page (100) and batch (100) sizes


def station(n: int) -> Entity:
    entity = Entity("AirQualityObserved", f"Tsukuba:{n:03d}")
    entity.prop("no2", 10.0 + n, unitcode="GQ", observedat=datetime(2024, 5, 1, 9, 0, tzinfo=UTC))
    entity.loc(36.08 + n * 1e-4, 140.11)  # ngsildclient takes (lat, lon) and writes GeoJSON [lon, lat]
    entity.obs("2024-05-01T09:00:00Z")  # a DateTime value {"@type": "DateTime", "@value": ...}
    entity.rel("refDevice", f"Device:{n:03d}")
    return entity


def main(host: str, port: int) -> None:
    # On start the client counts entities (limit=0&count=true), finds the tenant missing,
    # creates it with a batch upsert, then probes /version and /actuator/health.
    with Client(hostname=host, port=port, tenant="tsukuba", verbose=False) as client:
        assert client.create(station(0)) is True
        first = client.get("urn:ngsi-ld:AirQualityObserved:Tsukuba:000", asdict=True)
        assert first["no2"]["value"] == 10.0 and first["no2"]["unitCode"] == "GQ"
        assert first["location"]["value"] == {"type": "Point", "coordinates": [140.11, 36.08]}
        assert first["refDevice"]["object"] == "urn:ngsi-ld:Device:000"
        assert first["dateObserved"]["value"]["@value"] == "2024-05-01T09:00:00Z"
        assert client.exists("urn:ngsi-ld:AirQualityObserved:Tsukuba:000")

        result = client.upsert([station(n) for n in range(1, STATIONS)])
        assert result.ok and result.n_ok == STATIONS - 1, result
        assert client.count(type="AirQualityObserved") == STATIONS

        everything = client.query(type="AirQualityObserved")  # count, then pages of 100
        ids = [entity.id for entity in everything]
        assert len(ids) == STATIONS and len(set(ids)) == STATIONS
        high = client.query(type="AirQualityObserved", q="no2>=200")
        assert sorted(entity["no2"].value for entity in high) == [10.0 + n for n in range(190, STATIONS)]
        assert len(client.query_head(type="AirQualityObserved", n=5)) == 5

        assert client.delete(station(0))
        assert not client.exists("urn:ngsi-ld:AirQualityObserved:Tsukuba:000")
        assert client.count(type="AirQualityObserved") == STATIONS - 1
        deleted = client.delete([station(n) for n in range(1, 11)])
        assert deleted.ok and client.count(type="AirQualityObserved") == STATIONS - 11

    with Client(hostname=host, port=port, verbose=False) as default_tenant:
        assert default_tenant.count(type="AirQualityObserved") == 0  # tenants are separate
    print(f"OK ngsildclient round trip: {STATIONS} entities created, read, queried, paged, counted, deleted")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
