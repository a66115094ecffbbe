"""The conformance table of course/sscity/platform/README.md says what the broker does, clause by
clause; every row with a request in its "try it" column is sent to a broker and must answer
with the status the row claims (``yes``: 2xx; a number: that status). A row that drifts from
the code fails here, so the table cannot promise what the broker does not do."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT
from platform_support import COURSE_LINK, NGSI, http_client
from sscity.platform import Broker

README = ROOT / "course" / "sscity" / "platform" / "README.md"
ENTITY = "urn:ngsi-ld:Vehicle:qolo-01"


def table_rows() -> list[dict]:
    rows = []
    lines = README.read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| clause |"))
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 5, f"a conformance row needs 5 cells: {line}"
        rows.append(dict(zip(("clause", "feature", "here", "orion", "example"), cells, strict=True)))
    return rows


ROWS = table_rows()


def test_the_table_covers_the_issue_list_and_every_row_says_something():
    assert len(ROWS) >= 40
    for row in ROWS:
        assert re.fullmatch(r"yes|[1-5][0-9][0-9]", row["here"]), row
        assert row["orion"], row
    features = " ".join(row["feature"] for row in ROWS)
    for named in ("scope", "pick", "lang", "datasetId", "merge", "replace", "purge", "query by POST",
                  "batch merge", "one entity type", "attributes", "temporal attribute", "orderBy",
                  "notificationTrigger", "aggregated", "periodic", "MQTT"):
        assert named in features, f"the conformance table does not mention {named!r}"


def _request(example: str) -> tuple[str, str, object]:
    match = re.fullmatch(r"`(GET|POST|PATCH|PUT|DELETE) (/\S*)(?: (.+))?`", example)
    assert match, f"not a request: {example}"
    method, path, body = match.groups()
    return method, path, json.loads(body) if body else None


@pytest.fixture
def http():
    broker = Broker(":memory:")
    with http_client(broker, Link=COURSE_LINK) as client:
        vehicle = {"id": ENTITY, "type": "Vehicle",
                   "speed": [{"type": "Property", "value": 1.0, "observedAt": "2024-05-01T09:00:00Z"},
                             {"type": "Property", "value": 1.2, "datasetId": "urn:ngsi-ld:Dataset:gps"}],
                   "name": {"type": "LanguageProperty", "languageMap": {"ja": "キューボ", "en": "Qolo"}},
                   "location": {"type": "GeoProperty",
                                "value": {"type": "Point", "coordinates": [140.1, 36.1]}}}
        assert client.post(f"{NGSI}/entities", json=vehicle).status_code == 201
        subscription = {"id": "urn:ngsi-ld:Subscription:demo", "type": "Subscription",
                        "entities": [{"type": "Vehicle"}],
                        "notification": {"endpoint": {"uri": "sscity:inbox/demo"}}}
        assert client.post(f"{NGSI}/subscriptions", json=subscription).status_code == 201
        yield client
    broker.close()


@pytest.mark.parametrize("row", [row for row in ROWS if row["example"]],
                         ids=lambda row: f"{row['clause']} {row['feature'][:40]}")
def test_each_row_is_what_the_broker_does(http, row):
    method, path, body = _request(row["example"])
    response = http.request(method, NGSI + path, json=body) if body is not None else \
        http.request(method, NGSI + path)
    if row["here"] == "yes":
        assert 200 <= response.status_code < 300, (row, response.status_code, response.text)
    else:
        assert response.status_code == int(row["here"]), (row, response.status_code, response.text)
    if row["here"] == "501":
        assert response.json()["type"].endswith("/OperationNotSupported")
