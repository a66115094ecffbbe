"""Shared helpers of the tests of sscity.platform (the NGSI-LD broker)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import stop_process
from sscity.platform import CORE_CONTEXT_URL, COURSE_CONTEXT_URL, Broker
from sscity.platform.client import InProcessTransport
from sscity.platform.context import context_link_header

ROOT = Path(__file__).resolve().parents[1]
NGSI = "/ngsi-ld/v1"
COURSE_LINK = context_link_header(COURSE_CONTEXT_URL)
CORE_LINK = context_link_header(CORE_CONTEXT_URL)
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


def http_client(broker: Broker, **headers) -> httpx.Client:
    """An httpx client that calls ``broker``'s ASGI app in process."""
    return httpx.Client(base_url="http://broker.test", transport=InProcessTransport(broker.app),
                        headers=headers)


def air_quality(n: int, no2: float = 40.0, lon: float = 140.11, lat: float = 36.08,
                observed_at: str | None = "2024-05-01T09:00:00Z") -> dict:
    """A normalized AirQualityObserved entity (course context names)."""
    no2_attr = {"type": "Property", "value": no2, "unitCode": "GQ"}
    if observed_at:
        no2_attr["observedAt"] = observed_at
    return {"id": f"urn:ngsi-ld:AirQualityObserved:{n:03d}", "type": "AirQualityObserved", "no2": no2_attr,
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}}


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict:
    """Check a ProblemDetails response and return its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["type"] == ERRORS + kind, body
    assert body["title"] and body["detail"], body
    assert body["status"] == status
    return body


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(db: Path | None, port: int | None = None, timeout_s: float = 30.0,
                 extra_args: tuple[str, ...] = ()):
    """Start ``sscity platform serve`` in a subprocess and wait until it answers; returns (proc, url)."""
    port = port or free_port()
    command = [sys.executable, "-m", "sscity", "platform", "serve", "--port", str(port)]
    command += ["--db", str(db)] if db is not None else ["--memory"]
    command += list(extra_args)
    env = dict(os.environ)
    env.pop("SSCITY_BROKER_URL", None)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/actuator/health", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            output = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"the broker did not start on {url}: {output[-2000:]}")
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server started by :func:`start_server`."""
    stop_process(proc, timeout_s=10)
    if proc.stdout:
        proc.stdout.close()
