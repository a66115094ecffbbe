"""The city data platform: an embedded NGSI-LD context broker and its client.

NGSI-LD (ETSI GS CIM 009) is the API of city data platforms such as FIWARE's Orion-LD. This
package implements the subset the course uses, offline, on SQLite:

- :class:`Broker` (:mod:`.broker`, :mod:`.storage`): entities, attributes, batch
  operations, queries with the NGSI-LD query language and geo-queries, temporal history,
  subscriptions and tenants, stored in SQLite (WAL journal, R*Tree index of locations, one
  transaction per write). ``Broker(":memory:")`` or ``Broker("city.db")``.
- :func:`create_app` (:mod:`.app`): the Starlette ASGI application serving
  ``/ngsi-ld/v1`` with NGSI-LD's media types, ProblemDetails errors, pagination and
  tenant headers. :func:`serve` (:mod:`.server`) runs it with uvicorn; so does
  ``sscity platform serve --port 1026 --db city.db``.
- :mod:`.context`: JSON-LD ``@context`` expansion and compaction without a network; the
  NGSI-LD core context and the course context (Smart Data Models terms) ship in
  ``contexts/``.
- :class:`Client` (:mod:`.client`): what notebooks use. ``Client()`` talks to an embedded
  in-memory broker in process (no port, works inside Jupyter), ``Client(db="city.db")`` to
  an embedded broker on a file, ``Client(url=...)`` or the environment variable
  ``SSCITY_BROKER_URL`` to any NGSI-LD broker over HTTP (see ``ORION-LD.md``). Failures
  raise :class:`BrokerError` with the broker's ProblemDetails and a hint.
- :mod:`.consent`: :class:`ConsentLedger` (dynamic opt-in with a tamper-evident,
  hash-chained log) and :func:`gated_get` (read a resident's entity for a recipient only
  while consent stands; every decision logged).
- :mod:`.opendata`: :func:`export_geojson` and :func:`export_csv` publish entities with
  their licence (CSV on the Web metadata beside the CSV) and refuse personal data.
- Notifications go to http(s) endpoints or MQTT topics (``mqtt://host:port/topic``) in the
  background, or to in-process inboxes (endpoint ``sscity:inbox/<name>``, read with
  ``Client.notifications(name)``); on changes (``notificationTrigger``) or periodically
  (``timeInterval``).
- What of NGSI-LD is implemented, clause by clause, is in ``README.md`` beside this file;
  anything else is refused with a 501 that names the feature, never ignored.

Example
-------
>>> from sscity.platform import Client
>>> city = Client()
>>> city.create({"id": "urn:ngsi-ld:AirQualityObserved:tsukuba-01", "type": "AirQualityObserved",
...              "no2": {"type": "Property", "value": 41, "unitCode": "GQ",
...                      "observedAt": "2024-05-01T09:00:00Z"},
...              "location": {"type": "GeoProperty",
...                           "value": {"type": "Point", "coordinates": [140.11, 36.08]}}})
'urn:ngsi-ld:AirQualityObserved:tsukuba-01'
>>> [e["id"] for e in city.query(type="AirQualityObserved", q="no2>40")]
['urn:ngsi-ld:AirQualityObserved:tsukuba-01']
"""

from .app import create_app
from .broker import Broker
from .client import BatchResult, BrokerError, Client, EntityList, UpdateResult, embedded_broker, to_dataframe
from .consent import ConsentError, ConsentLedger, ConsentRecord, gated_get
from .context import CORE_CONTEXT_URL, COURSE_CONTEXT_URL
from .errors import NgsiError
from .notify import INBOX_SCHEME
from .opendata import LICENCES, export_csv, export_geojson, flatten_entity
from .server import serve

__all__ = [
    "COURSE_CONTEXT_URL", "CORE_CONTEXT_URL", "INBOX_SCHEME", "LICENCES", "BatchResult", "Broker",
    "BrokerError", "Client", "ConsentError", "ConsentLedger", "ConsentRecord", "EntityList",
    "NgsiError", "UpdateResult", "create_app", "embedded_broker", "export_csv", "export_geojson",
    "flatten_entity", "gated_get", "serve", "to_dataframe",
]
