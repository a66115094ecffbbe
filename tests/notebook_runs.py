"""Running course notebooks in fresh kernels and reading what they printed (test support).

Used by the reproducibility tests of the modules (``test_module02.py``, ``test_module04.py``)
and by ``test_lessons.py``: execute a notebook with nbclient in a folder of its own, list its
text outputs with run-to-run noise removed, and read the values a probe cell printed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

# Run-to-run noise that is not a result: memory addresses and wall-clock timings (%time).
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_TIMING = re.compile(r"(CPU times|Wall time):.*")


def normalise(text: str) -> str:
    return _TIMING.sub("<time>", _ADDRESS.sub("0x…", text))


def execute(notebook: Path, folder: Path, probe: str | None = None, timeout: int = 300):
    """Run ``notebook`` (plus an optional ``probe`` cell at the end) with ``folder`` as working folder."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(notebook, as_version=4)
    if probe is not None:
        nb.cells.append(nbformat.v4.new_code_cell(probe))
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def text_outputs(nb, dropped_lines: frozenset[str] = frozenset()) -> list[tuple[int, str, str]]:
    """(cell index, output kind, normalised text) of every text output, in order.

    A cell's stream output is joined per stream before comparing: the kernel may flush it in
    chunks that differ from run to run. Stream lines equal to one of ``dropped_lines`` (after
    stripping) are left out: notices a C library prints straight to the file descriptor land
    among Python's prints wherever buffering puts them.
    """
    found = []
    for index, cell in enumerate(nb.cells):
        streams: dict[str, str] = {}
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                streams[output["name"]] = streams.get(output["name"], "") + output["text"]
            elif output["output_type"] in ("execute_result", "display_data"):
                if "text/plain" in output.get("data", {}):
                    found.append((index, "text/plain", normalise(output["data"]["text/plain"])))
            elif output["output_type"] == "error":
                found.append((index, "error", f"{output['ename']}: {output['evalue']}"))
        for name, text in sorted(streams.items()):
            if dropped_lines:
                text = "\n".join(line for line in text.splitlines() if line.strip() not in dropped_lines)
            found.append((index, name, normalise(text)))
    return found


def assert_same_text(first, second, dropped_lines: frozenset[str] = frozenset()) -> None:
    """Two runs of a notebook printed the same texts, cell by cell (see :func:`text_outputs`)."""
    a_texts, b_texts = text_outputs(first, dropped_lines), text_outputs(second, dropped_lines)
    assert len(a_texts) == len(b_texts)
    for a, b in zip(a_texts, b_texts, strict=True):
        assert a == b, f"cell {a[0]} ({a[1]}) differs between runs:\n{a[2][:500]}\n---\n{b[2][:500]}"


def errors(nb) -> list[tuple[int, str]]:
    """(cell index, "Name: message") of every error output."""
    return [(index, text) for index, kind, text in text_outputs(nb) if kind == "error"]


def probe_values(nb, marker: str, cell: int = -1) -> dict:
    """The JSON the probe cell (the last cell, or ``cell``) printed after ``marker``."""
    text = "".join(output["text"] for output in nb.cells[cell].get("outputs", [])
                   if output["output_type"] == "stream" and output["name"] == "stdout")
    lines = [line for line in text.splitlines() if line.startswith(marker)]
    raised = [text for index, text in errors(nb) if index == cell % len(nb.cells)]
    assert len(lines) == 1, f"the probe cell printed no values {raised}"
    return json.loads(lines[0][len(marker):])
