"""Every lesson runs top to bottom in a fresh kernel, and no task is passed by pasting it.

Lessons earn no points, so nothing else would notice a lesson that stopped working: a
renamed helper, a changed dataset, a cell that depends on hidden state. Each one is run
with nbclient exactly as a student's *Restart and Run All* would, with the working folder
set to a new temporary directory (so files the lesson writes land there).

The same kernel then plays the student who pastes the module's teaching notebooks (the
lesson, and the primer where there is one) instead of answering: the assignment's setup
cells and test cells, hidden tests included, run after the lesson's code, with every answer
cell left out. Each autograded test must fail; one that passes marks a task that copying
the lesson solves. A pasted cell may also be renamed, so before the tests run as they are,
each test is tried with its answer names bound to every value of the lesson (or of the
setup cells) that has the same type as the solution's answer (for functions: the same
number of parameters), up to 150 bindings a test. The known-wrong answers check single
mistakes; this checks the whole lesson at once.
"""

from __future__ import annotations

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient
from notebook_runs import errors, probe_values
from sscity.course.notebooks import (
    cell_names,
    grade_id,
    is_autograded_answer,
    is_manual_answer,
    is_test_cell,
)

pytestmark = pytest.mark.slow

LESSONS = sorted(ROOT.glob("solutions/*/lesson.ipynb"))
_TEACHING = ("primer", "lesson")  # run in this order, as a newcomer would


# Kernel-side code. The type of a value: its class, and for a function its parameter count.
_KIND = r"""
import inspect as _inspect, json as _json


def _kind(value):
    arity = None
    if callable(value) and not isinstance(value, type):
        try:
            arity = len(_inspect.signature(value).parameters)
        except (TypeError, ValueError):
            pass
    return [type(value).__module__ + "." + type(value).__qualname__, arity]
"""

# Kernel-side code: bind the answer names to same-typed lesson values and run each test.
_RENAMED = r"""
import itertools as _it, signal as _signal, types as _types

_snapshot = {_k: _v for _k, _v in globals().items()
             if not _k.startswith("_") and not isinstance(_v, _types.ModuleType)}
_passed, _tried = {}, {}


def _alarm(*_args):
    raise TimeoutError


_signal.signal(_signal.SIGALRM, _alarm)
for _test in _TESTS:
    _options = [[_k for _k, _v in _snapshot.items() if _TYPES.get(_n) and _kind(_v) == _TYPES[_n]]
                or [None] for _n in _test["names"]]
    _tried[_test["id"]] = 0
    for _combo in _it.islice(_it.product(*_options), 150):
        if all(_c is None for _c in _combo):
            continue
        _ns = dict(globals())
        _ns.update({_n: _snapshot[_c] for _n, _c in zip(_test["names"], _combo) if _c})
        _tried[_test["id"]] += 1
        _signal.alarm(30)
        try:
            exec(compile(_test["source"], "<test>", "exec"), _ns)
        except BaseException:
            continue
        finally:
            _signal.alarm(0)
        _passed.setdefault(_test["id"], []).append(dict(zip(_test["names"], _combo)))
print("RENAMED" + _json.dumps({"passed": _passed, "tried": _tried}))
"""


def _answer_names(assignment):
    """Per test cell: its grade_id, source and the names its answer cells bind and it reads."""
    tests, pending = [], set()
    for cell in assignment.cells:
        if cell.cell_type != "code":
            continue
        if is_autograded_answer(cell):
            pending |= (cell_names(cell.source) or (set(), set()))[0]
        elif is_test_cell(cell):
            read = (cell_names(cell.source) or (set(), set()))[1]
            tests.append({"id": grade_id(cell), "source": cell.source,
                          "names": sorted(pending & read)})
            pending = set()
    return tests


def _solution_types(assignment, names, folder):
    """The type of each answer name after the solution ran (``_kind``)."""
    probe = _KIND + f"\nprint('TYPES' + _json.dumps({{n: _kind(globals()[n]) for n in {names!r} "
    probe += "if n in globals()}))"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source)
                                         for c in assignment.cells if c.cell_type == "code"]
                                  + [nbformat.v4.new_code_cell(probe)])
    folder.mkdir()
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return probe_values(nb, "TYPES")


def _lesson_then_tests(module_dir, types, tests):
    """One notebook: the teaching notebooks' cells, the assignment's setup cells, the
    renaming probe, then the assignment's test cells (answers left out).

    Returns the notebook, where the lesson ends, the probe's index and
    ``{cell index: test grade_id}``.
    """
    cells = []
    for stem in _TEACHING:
        path = module_dir / f"{stem}.ipynb"
        if path.is_file():
            cells += [nbformat.v4.new_code_cell(c.source)
                      for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    lesson_end = len(cells)
    assignment = nbformat.read(module_dir / "assignment.ipynb", as_version=4)
    code = [c for c in assignment.cells if c.cell_type == "code"
            and not (is_autograded_answer(c) or is_manual_answer(c))]
    cells += [nbformat.v4.new_code_cell(c.source) for c in code if not is_test_cell(c)]
    cells.append(nbformat.v4.new_code_cell(
        _KIND + f"\n_TESTS = {tests!r}\n_TYPES = {types!r}\n" + _RENAMED))
    probe = len(cells) - 1
    indexed = {}
    for cell in code:
        if is_test_cell(cell):
            indexed[len(cells)] = grade_id(cell)
            cells.append(nbformat.v4.new_code_cell(cell.source))
    return nbformat.v4.new_notebook(cells=cells), lesson_end, probe, indexed


@pytest.mark.parametrize("lesson", LESSONS, ids=[path.parent.name for path in LESSONS])
def test_lesson_runs_and_pasting_it_passes_no_task(lesson, tmp_path, monkeypatch):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)  # the embedded broker, as on a laptop
    module = lesson.parent.name
    assignment = nbformat.read(lesson.parent / "assignment.ipynb", as_version=4)
    tests = _answer_names(assignment)
    assert tests, f"{module}: the assignment has no test cells"
    types = _solution_types(assignment, sorted({n for t in tests for n in t["names"]}),
                            tmp_path / "solution")
    nb, lesson_end, probe, indexed = _lesson_then_tests(lesson.parent, types, tests)
    (tmp_path / "lesson").mkdir()
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path / "lesson")}}).execute()

    raised = dict(errors(nb))
    lesson_errors = [(i, text) for i, text in raised.items() if i < lesson_end]
    assert not lesson_errors, (
        f"{module}: the lesson (or primer) stopped with an error: {lesson_errors[0]}")
    setup_errors = [(i, text) for i, text in raised.items() if lesson_end <= i < probe]
    assert not setup_errors, (
        f"{module}: an assignment setup cell failed after the lesson, so the checks below "
        f"would prove nothing: {setup_errors[0]}")
    renamed = probe_values(nb, "RENAMED", probe)
    assert not renamed["passed"], (
        f"{module}: tests passed with an answer name bound to a lesson value of the same "
        f"type (tasks solved by renaming a lesson result): {renamed['passed']}")
    passed = [gid for index, gid in indexed.items() if index not in raised]
    assert not passed, (
        f"{module}: with the lesson pasted in place of every answer, these autograded tests "
        f"still pass (tasks solved by copying the lesson): {passed}")


def test_every_module_has_a_lesson():
    modules = sorted(path.name for path in (ROOT / "solutions").iterdir() if path.is_dir())
    assert [path.parent.name for path in LESSONS] == modules
