"""Module 04: the assignment gives identical results on two runs in fresh kernels.

The solution notebook (with its hidden tests) is executed twice with nbclient, each time in a
fresh kernel whose working folder is a new temporary directory. Every text output (streams,
``text/plain`` results) must be identical, and so must every value the student computes,
read at full precision by a probe cell appended to the notebook: the wheel speeds that reach
a point, the waypoint drive (its whole log, hashed bit for bit), the pybullet path errors, the
walkers' closest approach, the crowd episodes (their whole logs and pedestrian tracks, hashed), the
metrics and how often the assistant takes over, the steepest safe ramps and the places within reach.
"""

from __future__ import annotations

import math

import pytest
from conftest import ROOT
from notebook_runs import assert_same_text, errors, execute, probe_values

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
    "doorway_wheels": [float(w) for w in doorway_wheels],
    "doorway_end": [float(c) for c in integrate_unicycle([0.0, 0.0, 0.0], *body_twist(*doorway_wheels), 4.0)],
    "wheels_to_reach": [float(w) for w in wheels_to_reach(-1.0, 2.5, 6.0)],
    "concourse_log": _digest(concourse_log.to_numpy(dtype=float)),
    "concourse_end": [float(c) for c in concourse_log.iloc[-1][["x_m", "y_m"]]],
    "path_errors": [float(inside_error_m), float(outside_error_m)],
    "walkers": [float(passing_gap_m), float(widening_m), float(closest_approach(-0.5, 1.1))],
    "episodes": {name: [_digest(result.log.to_numpy(dtype=float)), _digest(result.pedestrians_xy)]
                 for name, result in episodes.items()},
    "crowd_table": {name: {column: float(value) for column, value in row.items()}
                    for name, row in crowd_table.to_dict(orient="index").items()},
    "takeover": [float(takeover_blocked), float(takeover_free)],
    "ramps": [float(standing_emergency_percent), float(seated_emergency_percent),
              bool(standing_emergency_ok_on_1_12)],
    "campus_reach": {name: int(value) for name, value in campus_reach.items()},
}
print("M04-VALUES " + _json.dumps(_values, sort_keys=True))
'''

# pybullet's C code prints ``argv[0]=`` whenever a world connects: a connection notice, not a result.
_PYBULLET_NOTICE = frozenset({"argv[0]="})


def _run(folder):
    return execute(NOTEBOOK, folder, PROBE)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("module04")
    return _run(base / "first"), _run(base / "second")


def test_assignment_runs_without_errors(two_runs):
    for nb in two_runs:
        assert not errors(nb), errors(nb)


def test_text_outputs_are_identical_on_two_runs(two_runs):
    assert_same_text(*two_runs, _PYBULLET_NOTICE)


def test_student_values_are_identical_on_two_runs(two_runs):
    first, second = (probe_values(nb, MARKER) for nb in two_runs)
    assert first == second  # exact: floats at full precision, logs hashed bit for bit
    # and they are the values the module is about
    assert first["doorway_end"][:2] == pytest.approx([2.0, 1.5], abs=1e-9)
    assert math.hypot(first["concourse_end"][0] - 2.0, first["concourse_end"][1] - 7.0) < 0.15
    assert 0 < first["path_errors"][0] < first["path_errors"][1]
    assert first["walkers"][1] > 0
    assert 0 < first["takeover"][1] < first["takeover"][0] < 1
    assert first["crowd_table"]["go_to_goal"]["virtual_collisions"] > 0
    assert first["crowd_table"]["safe_go_to_goal"]["virtual_collisions"] == 0
    assert 0 < first["ramps"][0] < first["ramps"][1] and first["ramps"][2] is False
    reach = first["campus_reach"]
    assert reach["walking"] > reach["qolo"] > reach["manual_wheelchair"] > 0
