"""A third-party client, ngsildclient 0.5.2, against ``sscity platform serve``.

ngsildclient pins httpx<0.24, so it cannot live in the course environment. Give the test
an interpreter that has it::

    python3 -m venv /tmp/ngsild-venv
    /tmp/ngsild-venv/bin/pip install ngsildclient==0.5.2
    SSCITY_NGSILD_CLIENT_PYTHON=/tmp/ngsild-venv/bin/python python -m pytest tests/test_platform_thirdparty.py

Without the variable the test is skipped (with that reason).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from platform_support import ROOT, start_server, stop_server

INTERPRETER = os.environ.get("SSCITY_NGSILD_CLIENT_PYTHON", "")
SCRIPT = ROOT / "tests" / "thirdparty" / "ngsildclient_roundtrip.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not INTERPRETER or not Path(INTERPRETER).exists(),
                       reason="ngsildclient needs its own environment (it pins httpx<0.24): set "
                              "SSCITY_NGSILD_CLIENT_PYTHON to the python of a venv with ngsildclient==0.5.2 "
                              "(python3 -m venv /tmp/ngsild-venv && /tmp/ngsild-venv/bin/pip install "
                              "ngsildclient==0.5.2)"),
]


def test_ngsildclient_round_trip(tmp_path):
    probe = subprocess.run([INTERPRETER, "-c", "import ngsildclient; print(ngsildclient.__version__)"],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, (f"SSCITY_NGSILD_CLIENT_PYTHON={INTERPRETER} cannot import ngsildclient: "
                                   f"{probe.stderr[-500:]}")
    proc, url = start_server(tmp_path / "thirdparty.db")
    try:
        host, port = url.removeprefix("http://").split(":")
        done = subprocess.run([INTERPRETER, str(SCRIPT), host, port], capture_output=True, text=True,
                              timeout=300)
    finally:
        stop_server(proc)
    assert done.returncode == 0, (f"ngsildclient failed against the broker:\n{done.stdout}\n"
                                  f"{done.stderr[-3000:]}")
    assert done.stdout.splitlines()[-1].startswith("OK ngsildclient round trip"), done.stdout
