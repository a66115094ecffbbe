"""Module 04: the assignment gives identical results on two runs in fresh kernels.

The solution notebook (with its hidden tests) is executed twice with nbclient, each time in a
fresh kernel whose working folder is a new temporary directory. Every text output (streams,
``text/plain`` results) must be identical, and so must every value the student computes,
read at full precision by a probe cell appended to the notebook: the kinematics, the
controller's commands, the pybullet poses, the social-force step, the crowd episodes (their
whole logs and pedestrian tracks, hashed bit for bit), the metrics, the braking limits and
the route detours.
"""

from __future__ import annotations

import json
import math
import re

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOK = ROOT / "solutions" / "04-mobility-control" / "assignment.ipynb"
MARKER = "M04-VALUES "

# Appended to the notebook after the last cell; reads every value the student defines.
PROBE = r'''
import hashlib as _hashlib
import json as _json


def _digest(values):
    return _hashlib.sha256(np.ascontiguousarray(values, dtype=float).tobytes()).hexdigest()


_values = {
    "twist_to_wheels": [float(w) for w in twist_to_wheels(1.0, 0.3)],
    "arc_end_pose": [float(c) for c in arc_end_pose(1.0, 0.3, 10.0)],
    "goal_command": [[float(c) for c in goal_command(pose, (4.0, 3.0))]
                     for pose in ((0.0, 0.0, 0.0), (1.0, -2.0, 2.5), (3.0, 2.5, -1.0))],
    "turn_sim": [float(c) for c in turn_sim],
    "turn_ideal": [float(c) for c in turn_ideal],
    "turn_errors": [float(heading_error_rad), float(position_error_m), bool(turn_within_tolerance)],
    "social_step": [[float(c) for c in part]
                    for part in social_step((0.0, 0.0), (1.2, 0.0), (10.0, 0.0), 1.34, (0.8, 0.2))],
    "episodes": {name: [_digest(result.log.to_numpy(dtype=float)), _digest(result.pedestrians_xy)]
                 for name, result in episodes.items()},
    "crowd_table": {name: {column: float(value) for column, value in row.items()}
                    for name, row in crowd_table.to_dict(orient="index").items()},
    "shared_control": [float(shared_agreement), float(shared_contribution)],
    "braking": [float(brake_limit_seated), float(brake_limit_standing), bool(standing_safe_at_drive_limit)],
    "campus_detours": {name: float(value) for name, value in campus_detours.items()},
}
print("M04-VALUES " + _json.dumps(_values, sort_keys=True))
'''

# Run-to-run noise that is not a result: memory addresses and wall-clock timings (%time).
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_TIMING = re.compile(r"(CPU times|Wall time):.*")


def _normalise(text: str) -> str:
    return _TIMING.sub("<time>", _ADDRESS.sub("0x…", text))


def _run(folder):
    folder.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def _texts(nb) -> list[tuple[int, str, str]]:
    """(cell index, output kind, normalised text) of every text output, in order.

    A cell's stream output is joined per stream before comparing: the kernel may flush it in
    chunks that differ from run to run. pybullet's C code prints ``argv[0]=`` whenever a world
    connects, straight to the process's file descriptor, so where that line lands among
    Python's own prints depends on buffering; it is a connection notice, not a result, and is
    dropped.
    """
    found = []
    for index, cell in enumerate(nb.cells):
        streams: dict[str, str] = {}
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                streams[output["name"]] = streams.get(output["name"], "") + output["text"]
            elif output["output_type"] in ("execute_result", "display_data"):
                if "text/plain" in output.get("data", {}):
                    found.append((index, "text/plain", _normalise(output["data"]["text/plain"])))
            elif output["output_type"] == "error":
                found.append((index, "error", f"{output['ename']}: {output['evalue']}"))
        for name, text in sorted(streams.items()):
            kept = "\n".join(line for line in text.splitlines() if line.strip() != "argv[0]=")
            found.append((index, name, _normalise(kept)))
    return found


def _values(nb) -> dict:
    text = "".join(output["text"] for output in nb.cells[-1].get("outputs", [])
                   if output["output_type"] == "stream" and output["name"] == "stdout")
    lines = [line for line in text.splitlines() if line.startswith(MARKER)]
    assert len(lines) == 1, "the probe cell printed no values"
    return json.loads(lines[0][len(MARKER):])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("module04")
    return _run(base / "first"), _run(base / "second")


def test_assignment_runs_without_errors(two_runs):
    for nb in two_runs:
        errors = [(index, text) for index, kind, text in _texts(nb) if kind == "error"]
        assert not errors, errors


def test_text_outputs_are_identical_on_two_runs(two_runs):
    first, second = (_texts(nb) for nb in two_runs)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a == b, f"cell {a[0]} ({a[1]}) differs between runs:\n{a[2][:500]}\n---\n{b[2][:500]}"


def test_student_values_are_identical_on_two_runs(two_runs):
    first, second = (_values(nb) for nb in two_runs)
    assert first == second  # exact: floats at full precision, logs hashed bit for bit
    # and they are the values the module is about
    assert first["arc_end_pose"] == pytest.approx([math.sin(3) / 0.3, (1 - math.cos(3)) / 0.3, 3.0])
    assert first["turn_errors"][2] is True
    assert first["crowd_table"]["go_to_goal"]["virtual_collisions"] > 0
    assert first["crowd_table"]["safe_go_to_goal"]["virtual_collisions"] == 0
    assert first["campus_detours"]["walking"] == 0.0
    assert 30 < first["campus_detours"]["manual_wheelchair"] < 32
