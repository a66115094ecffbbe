"""Concurrent writers lose no update; a killed writer leaves each entity whole or absent;
the in-process client works inside a running event loop (as in Jupyter)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from platform_support import COURSE_LINK, NGSI, ROOT, air_quality, http_client, start_server, stop_server
from sscity.platform import Broker, Client

ENTITY = "urn:ngsi-ld:AirQualityObserved:001"
COURSE = "https://sscity.example.org/ngsi-ld/sscity-context.jsonld"


def test_threads_patching_different_attributes_keep_all_of_them(tmp_path):
    broker = Broker(tmp_path / "city.db")
    ctx = broker.contexts.resolve(COURSE)
    broker.create_entity("", {"id": ENTITY, "type": "AirQualityObserved",
                              **{f"sensor{k}": -1 for k in range(4)}}, ctx)
    rounds = 30
    errors = []

    def writer(k: int) -> None:
        try:
            for n in range(rounds):
                # Each partial update reads the entity and writes it back: without the write
                # lock taken first, two threads would overwrite each other's attribute.
                broker.patch_attribute("", ENTITY, ctx.expand(f"sensor{k}"),
                                       {"value": n, "observedAt": f"2024-05-01T00:00:{n:02d}Z"}, ctx)
        except Exception as err:  # reported below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with http_client(broker, Link=COURSE_LINK) as http:
        body = http.get(f"{NGSI}/entities/{ENTITY}", params={"options": "keyValues"}).json()
        assert [body[f"sensor{k}"] for k in range(4)] == [rounds - 1] * 4
        history = http.get(f"{NGSI}/temporal/entities/{ENTITY}").json()
        assert all(len(history[f"sensor{k}"]) == rounds for k in range(4))
    broker.close()


def test_threads_sharing_the_in_process_client(tmp_path):
    client = Client(db=tmp_path / "shared.db")
    client.batch_create([air_quality(n) for n in range(8)])

    def writer(n: int) -> None:
        for value in range(20):
            client.patch_attr(f"urn:ngsi-ld:AirQualityObserved:{n:03d}", "no2", value)
            client.append_attrs(f"urn:ngsi-ld:AirQualityObserved:{n:03d}", {f"t{value}": value})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for entity in client.query(type="AirQualityObserved", key_values=True, limit=100):
        assert entity["no2"] == 19 and all(entity[f"t{v}"] == v for v in range(20))


_PROCESS_WRITER = textwrap.dedent("""
    import sys
    from sscity.platform import Broker
    path, k, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    broker = Broker(path)
    ctx = broker.contexts.resolve("https://sscity.example.org/ngsi-ld/sscity-context.jsonld")
    for n in range(rounds):
        broker.update_attributes("", "urn:ngsi-ld:AirQualityObserved:001", {f"process{k}": n}, ctx,
                                 append=True)
        broker.patch_attribute("", "urn:ngsi-ld:AirQualityObserved:001", ctx.expand("no2"),
                               {"value": k * 1000 + n}, ctx)
    broker.close()
""")


@pytest.mark.slow
def test_processes_writing_one_file_lose_no_update(tmp_path):
    path = tmp_path / "city.db"
    broker = Broker(path)
    broker.create_entity("", air_quality(1), broker.contexts.resolve(COURSE))
    broker.close()
    rounds = 40
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS_WRITER, str(path), str(k), str(rounds)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for k in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with Client(db=path) as client:
        body = client.get(ENTITY, key_values=True)
    assert [body[f"process{k}"] for k in range(3)] == [rounds - 1] * 3
    assert body["no2"] % 1000 == rounds - 1  # the last write of one of the processes


_CRASHING_WRITER = textwrap.dedent("""
    import contextlib, sys
    from sscity.platform import Broker
    from sscity.platform.storage import Store

    path, size = sys.argv[1], int(sys.argv[2])
    broker = Broker(path)
    ctx = broker.contexts.resolve("https://sscity.example.org/ngsi-ld/sscity-context.jsonld")
    plain_write = Store.write

    @contextlib.contextmanager
    def announced_write(self):
        with plain_write(self) as conn:
            print("in transaction", flush=True)  # the parent kills us from here on
            yield conn

    Store.write = announced_write
    for batch in range(1000):
        entities = [{"id": f"urn:ngsi-ld:AirQualityObserved:{batch}-{i}", "type": "AirQualityObserved",
                     "no2": {"type": "Property", "value": i, "observedAt": "2024-05-01T00:00:00Z"},
                     "pm25": i, "pm10": i, "name": f"station {batch}-{i}",
                     "location": {"type": "Point", "coordinates": [140 + i * 1e-5, 36.1]}}
                    for i in range(size)]
        broker.batch("", "upsert", entities, [ctx] * size)
        print("committed", batch, flush=True)
""")


def _check_whole_or_absent(path, batch_size: int) -> int:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        entities = conn.execute("SELECT COUNT(*) FROM entities").fetchone()[0]
        assert entities % batch_size == 0  # whole batches only
        assert conn.execute("SELECT COUNT(*) FROM entity_location").fetchone()[0] == entities
        assert conn.execute("SELECT COUNT(*) FROM history").fetchone()[0] == entities
    with Client(db=path) as client:
        for entity in client.query_all(type="AirQualityObserved", key_values=True, page_size=1000):
            assert set(entity) == {"id", "type", "no2", "pm25", "pm10", "name", "location"}
    return entities


@pytest.mark.slow
def test_a_writer_killed_mid_batch_leaves_whole_entities_or_none(tmp_path):
    path = tmp_path / "crash.db"
    size = 3000
    proc = subprocess.Popen([sys.executable, "-c", _CRASHING_WRITER, str(path), str(size)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    transactions = 0
    try:
        for line in proc.stdout:
            if line.startswith("in transaction"):
                transactions += 1
                if transactions == 3:  # two batches committed, the third one half written
                    time.sleep(0.05)
                    proc.send_signal(signal.SIGKILL)
                    break
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert os.path.exists(f"{path}-wal")  # the WAL was left behind by the kill
    entities = _check_whole_or_absent(path, size)
    assert entities in (2 * size, 3 * size)


@pytest.mark.slow
def test_a_server_killed_during_a_big_batch_leaves_whole_entities_or_none(tmp_path):
    import httpx

    path = tmp_path / "served.db"
    proc, url = start_server(path)
    size = 20_000
    entities = [{"id": f"urn:ngsi-ld:AirQualityObserved:{i}", "type": "AirQualityObserved",
                 "no2": {"type": "Property", "value": i, "observedAt": "2024-05-01T00:00:00Z"},
                 "pm25": i, "pm10": i, "name": f"station {i}",
                 "location": {"type": "Point", "coordinates": [140 + i * 1e-6, 36.1]}} for i in range(size)]
    try:
        first = httpx.post(f"{url}{NGSI}/entityOperations/upsert", json=entities[:1000], timeout=30)
        assert first.status_code == 201
        sender = threading.Thread(target=lambda: _post_quietly(url, entities[1000:]))
        sender.start()
        time.sleep(0.6)  # the body is sent and being stored
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        sender.join(timeout=30)
    finally:
        stop_server(proc)
    stored = _check_whole_or_absent(path, 1000)
    assert stored in (1000, size)


def _post_quietly(url: str, entities: list) -> None:
    import httpx

    try:
        httpx.post(f"{url}{NGSI}/entityOperations/upsert", json=entities, timeout=30)
    except httpx.HTTPError:
        pass  # the server died under us: that is the point


def test_the_in_process_client_works_inside_a_running_event_loop():
    results = {}

    async def notebook_cell():
        # Jupyter runs cells inside its own event loop: the client must not call asyncio.run.
        assert asyncio.get_running_loop().is_running()
        client = Client()
        client.batch_upsert([air_quality(901, no2=12.5)])
        results["got"] = client.get("urn:ngsi-ld:AirQualityObserved:901", key_values=True)
        results["count"] = client.count(type="AirQualityObserved", q="no2==12.5")

    thread = threading.Thread(target=lambda: asyncio.run(notebook_cell()))
    thread.start()
    thread.join(timeout=30)
    assert results["got"]["no2"] == 12.5 and results["count"] >= 1
