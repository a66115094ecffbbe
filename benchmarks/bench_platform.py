"""Benchmarks of the embedded NGSI-LD broker; one line per figure: ``BENCH <name> <value> <unit>``.

- ``platform_batch_upsert_inprocess_*``: entities/s through ``Broker.batch`` (validation,
  expansion and SQLite, no HTTP), new entities and then replacing them;
- ``platform_batch_upsert_http``: entities/s of ``POST /entityOperations/upsert`` (1000 per
  request) to a real ``sscity platform serve`` subprocess; this also loads 100,000 entities
  (seeded random points around Tsukuba, lon 140.0-140.2, lat 36.0-36.2);
- ``platform_get_by_id_http``: ``GET /entities/{id}`` requests/s and p95 latency over loopback
  HTTP, from 4 client threads with keep-alive connections (the client competes with the server
  for the machine's cores);
- ``*_server_cpu``: the server process's CPU time (user + system, from ``/proc``) per GET by id
  and per upserted entity: on a machine shared with other work this varies far less than the
  rates, which follow whatever else runs;
- ``platform_get_by_id_http_p95_during_slow_q`` (and ``_max``): latency of one client's GETs by
  id while another client runs the slow ``q`` below back to back (no request blocks others);
- ``platform_geo_near_p95_100k``: p95 latency of ``georel=near;maxDistance==500`` at 100,000
  entities, over HTTP and in process;
- ``platform_query_q_p95_100k``: p95 latency of ``type=AirQualityObserved&q=no2>X&count=true``
  (about 1 % of the 100,000 entities match; first page of 100), over HTTP; q runs in SQLite
  (qsql.py). ``platform_query_q_p95_100k_python``: the same with ``SSCITY_Q_SQL=0`` (a second
  server on the same database, q evaluated in Python after the numeric prefilter: the old path);
- ``platform_temporal_p95``: p95 latency of ``GET /temporal/entities/{id}`` with a
  ``timerel=between`` window over 50 recorded instances.
- ``platform_temporal_long_*``: in process, one entity with 100,000 instances of one
  attribute: p95 of the first 206 page (1000 instances), of a page in the middle
  (``timerel=after``), of ``lastN=10``, and the time of ``aggrMethods=avg,max&aggrPeriodDuration=P1D``
  over the whole history.

Run: ``python benchmarks/bench_platform.py [--entities 100000]``. Timings vary with the
machine's load; goals on a 2-core laptop (issue 17): >= 10,000 entities/s batch upsert over
HTTP, >= 4,500 GET by id/s, geo-near p95 <= 10 ms and q p95 <= 50 ms over HTTP at 100k.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from platform_support import start_server, stop_server  # noqa: E402
from sscity.platform import COURSE_CONTEXT_URL, Broker  # noqa: E402
from sscity.platform.context import context_link_header  # noqa: E402

SEED = 20240501
BATCH = 1000
NGSI = "/ngsi-ld/v1"
HEADERS = {"Content-Type": "application/json", "Link": context_link_header(COURSE_CONTEXT_URL)}


def bench(name: str, value: float, unit: str) -> None:
    print(f"BENCH {name} {value:.3f} {unit}", flush=True)


def p95(samples: list[float]) -> float:
    return float(np.percentile(samples, 95))


def stations(count: int, seed: int = SEED, start: int = 0) -> list[dict]:
    """AirQualityObserved entities at seeded random places around Tsukuba ([lon, lat])."""
    rng = np.random.default_rng(seed)
    lons = rng.uniform(140.0, 140.2, count)
    lats = rng.uniform(36.0, 36.2, count)
    no2 = rng.uniform(0.0, 80.0, count)
    return [{"id": f"urn:ngsi-ld:AirQualityObserved:{start + i}", "type": "AirQualityObserved",
             "no2": {"type": "Property", "value": round(float(no2[i]), 2), "unitCode": "GQ",
                     "observedAt": "2024-05-01T09:00:00Z"},
             "pm25": {"type": "Property", "value": round(float(no2[i]) / 3, 2)},
             "location": {"type": "GeoProperty",
                          "value": {"type": "Point", "coordinates": [float(lons[i]), float(lats[i])]}}}
            for i in range(count)]


def bench_inprocess_upsert(folder: Path, count: int) -> None:
    broker = Broker(folder / "inprocess.db")
    ctx = broker.contexts.resolve(COURSE_CONTEXT_URL)
    entities = stations(count)
    for label in ("new", "replace"):
        started = time.perf_counter()
        for first in range(0, count, BATCH):
            chunk = entities[first:first + BATCH]
            outcome = broker.batch("", "upsert", chunk, [ctx] * len(chunk))
            assert not outcome.errors
        rate = count / (time.perf_counter() - started)
        bench(f"platform_batch_upsert_inprocess_{label}", rate, "entities/s")
    broker.close()


def server_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) the process ``pid`` has used so far, or None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_server_cpu(name: str, pid: int, before: float | None, count: int, unit: str) -> None:
    after = server_cpu_s(pid)
    if before is not None and after is not None and count:
        bench(name, (after - before) / count * 1e6, unit)


def request(conn: http.client.HTTPConnection, method: str, path: str, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


def load_over_http(port: int, entities: list[dict]) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    for first in range(0, len(entities), BATCH):
        status, body = request(conn, "POST", f"{NGSI}/entityOperations/upsert",
                               json.dumps(entities[first:first + BATCH]), HEADERS)
        assert status in (201, 204), (status, body[:300])
    rate = len(entities) / (time.perf_counter() - started)
    conn.close()
    return rate


def bench_get_during_slow_q(port: int, count: int, seconds: float = 3.0) -> None:
    """GET-by-id latency of one client while another runs slow q queries back to back."""
    stop = threading.Event()
    slow_runs = []

    def slow() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not stop.is_set():
            status, body = request(conn, "GET", f"{NGSI}/entities?type=AirQualityObserved&q=no2%3E79.9"
                                   "&count=true&limit=100", headers={"Link": HEADERS["Link"]})
            assert status == 200, body[:300]
            slow_runs.append(1)
        conn.close()

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.05)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rng = random.Random(SEED + 4)
    latencies = []
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        path = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:{rng.randrange(count)}"
        started = time.perf_counter()
        status, _ = request(conn, "GET", path, headers={"Link": HEADERS["Link"]})
        latencies.append(time.perf_counter() - started)
        assert status == 200
        time.sleep(0.005)
    stop.set()
    thread.join()
    conn.close()
    bench("platform_get_by_id_http_p95_during_slow_q", p95(latencies) * 1000, "ms")
    bench("platform_get_by_id_http_max_during_slow_q", max(latencies) * 1000, "ms")
    bench("platform_slow_q_runs_meanwhile", len(slow_runs), "queries")


def bench_get_by_id(port: int, count: int, threads: int = 4, seconds: float = 5.0,
                    pid: int | None = None) -> None:
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.perf_counter() < stop_at:
            path = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:{rng.randrange(count)}"
            started = time.perf_counter()
            status, _ = request(conn, "GET", path, headers={"Link": HEADERS["Link"]})
            mine.append(time.perf_counter() - started)
            assert status == 200
        conn.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=worker, args=(SEED + k,)) for k in range(threads)]
    cpu_before = server_cpu_s(pid) if pid else None
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    bench("platform_get_by_id_http", len(latencies) / elapsed, "requests/s")
    bench("platform_get_by_id_http_p95", p95(latencies) * 1000, "ms")
    if pid:
        bench_server_cpu("platform_get_by_id_http_server_cpu", pid, cpu_before, len(latencies), "us/request")


def near_paths(queries: int) -> list[str]:
    rng = np.random.default_rng(SEED + 1)
    lons, lats = rng.uniform(140.0, 140.2, queries), rng.uniform(36.0, 36.2, queries)
    return [f"{NGSI}/entities?type=AirQualityObserved&georel=near%3BmaxDistance%3D%3D500&geometry=Point"
            f"&coordinates=%5B{lon:.5f},{lat:.5f}%5D&limit=1000" for lon, lat in zip(lons, lats, strict=True)]


def bench_geo_near_http(port: int, queries: int = 300) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, found = [], []
    for path in near_paths(queries):
        started = time.perf_counter()
        status, body = request(conn, "GET", path, headers={"Link": HEADERS["Link"]})
        latencies.append(time.perf_counter() - started)
        assert status == 200, body[:300]
        found.append(len(json.loads(body)))
    conn.close()
    bench("platform_geo_near_p95_100k_http", p95(latencies) * 1000, "ms")
    bench("platform_geo_near_mean_matches", statistics.mean(found), "entities")


def bench_geo_near_inprocess(db: Path, queries: int = 300) -> None:
    from urllib.parse import parse_qsl, urlsplit

    from sscity.platform.broker import EntityQuery
    from sscity.platform.geo import parse_geoquery

    broker = Broker(db)
    ctx = broker.contexts.resolve(COURSE_CONTEXT_URL)
    latencies = []
    for path in near_paths(queries):
        params = dict(parse_qsl(urlsplit(path).query))
        started = time.perf_counter()
        query = EntityQuery(types=(ctx.expand("AirQualityObserved"),), limit=1000,
                            geo=parse_geoquery(params["georel"], params["geometry"], params["coordinates"]))
        broker.query_entities("", query)
        latencies.append(time.perf_counter() - started)
    broker.close()
    bench("platform_geo_near_p95_100k_inprocess", p95(latencies) * 1000, "ms")


def bench_query_q(port: int, queries: int = 20, suffix: str = "") -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rng = np.random.default_rng(SEED + 3)
    latencies = []
    for threshold in rng.uniform(78.0, 79.5, queries):
        path = f"{NGSI}/entities?type=AirQualityObserved&q=no2%3E{threshold:.2f}&count=true&limit=100"
        started = time.perf_counter()
        status, body = request(conn, "GET", path, headers={"Link": HEADERS["Link"]})
        latencies.append(time.perf_counter() - started)
        assert status == 200, body[:300]
    conn.close()
    bench(f"platform_query_q_p95_100k{suffix}", p95(latencies) * 1000, "ms")


def bench_temporal(port: int, entities: int = 200, instances: int = 50, queries: int = 300) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for step in range(instances):
        batch = [{"id": f"urn:ngsi-ld:CrowdFlowObserved:{n}", "type": "CrowdFlowObserved",
                  "peopleCount": {"type": "Property", "value": (n + step) % 40,
                                  "observedAt": f"2024-05-01T{step // 60:02d}:{step % 60:02d}:00Z"}}
                 for n in range(entities)]
        status, body = request(conn, "POST", f"{NGSI}/entityOperations/upsert?options=update",
                               json.dumps(batch), HEADERS)
        assert status in (201, 204), body[:300]
    rng = random.Random(SEED + 2)
    latencies = []
    for _ in range(queries):
        path = (f"{NGSI}/temporal/entities/urn:ngsi-ld:CrowdFlowObserved:{rng.randrange(entities)}"
                "?timerel=between&timeAt=2024-05-01T00:10:00Z&endTimeAt=2024-05-01T00:40:00Z")
        started = time.perf_counter()
        status, body = request(conn, "GET", path, headers={"Link": HEADERS["Link"]})
        latencies.append(time.perf_counter() - started)
        assert status == 200 and len(json.loads(body)["peopleCount"]) == 30, body[:300]
    conn.close()
    bench("platform_temporal_p95", p95(latencies) * 1000, "ms")


def bench_temporal_long_history(instances: int = 100_000, queries: int = 50) -> None:
    from platform_support import http_client

    broker = Broker(":memory:")
    start = time.mktime((2024, 1, 1, 0, 0, 0, 0, 0, 0))
    stamps = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 30 * i)) for i in range(instances)]
    for chunk in range(0, instances, 10_000):
        broker.temporal_create("", {"id": "urn:ngsi-ld:Vehicle:long", "type": "Vehicle", "speed": [
            {"type": "Property", "value": i % 97, "observedAt": stamps[i]}
            for i in range(chunk, min(instances, chunk + 10_000))]}, broker.contexts.resolve(None))
    url = f"{NGSI}/temporal/entities/urn:ngsi-ld:Vehicle:long"
    middle = stamps[instances // 2]
    with http_client(broker, Link=HEADERS["Link"]) as client:
        for name, params, status in (("first_page", {}, 206),
                                     ("middle_page", {"timerel": "after", "timeAt": middle}, 206),
                                     ("last_n_10", {"lastN": 10}, 200)):
            latencies = []
            for _ in range(queries):
                started = time.perf_counter()
                response = client.get(url, params=params)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == status, response.text[:300]
            bench(f"platform_temporal_long_{name}_p95", p95(latencies) * 1000, "ms")
        started = time.perf_counter()
        response = client.get(url, params={"options": "aggregatedValues", "aggrMethods": "avg,max",
                                           "aggrPeriodDuration": "P1D"})
        assert response.status_code == 200 and len(response.json()["speed"]["avg"]) > 30
        bench("platform_temporal_long_aggregated_p1d", (time.perf_counter() - started) * 1000, "ms")
    broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000,
                        help="entities loaded over HTTP (default 100000)")
    parser.add_argument("--inprocess", type=int, default=20_000, help="entities of the in-process upsert")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs; seed {SEED}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sscity-bench-") as folder:
        folder = Path(folder)
        bench_inprocess_upsert(folder, args.inprocess)
        db = folder / "served.db"
        proc, url = start_server(db)
        port = int(url.rsplit(":", 1)[1])
        try:
            cpu_before = server_cpu_s(proc.pid)
            bench("platform_batch_upsert_http", load_over_http(port, stations(args.entities)), "entities/s")
            bench_server_cpu("platform_batch_upsert_http_server_cpu", proc.pid, cpu_before, args.entities,
                             "us/entity")
            bench_get_by_id(port, args.entities, pid=proc.pid)
            bench_get_during_slow_q(port, args.entities)
            bench_geo_near_http(port)
            bench_query_q(port)
            bench_temporal(port)
        finally:
            stop_server(proc)
        # The old path (q in Python) on the same database, as a baseline in the same run.
        os.environ["SSCITY_Q_SQL"] = "0"
        try:
            proc, url = start_server(db)
            try:
                bench_query_q(int(url.rsplit(":", 1)[1]), suffix="_python")
            finally:
                stop_server(proc)
        finally:
            del os.environ["SSCITY_Q_SQL"]
        bench_geo_near_inprocess(db)
    bench_temporal_long_history()


if __name__ == "__main__":
    main()
