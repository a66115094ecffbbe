"""A demo class built from the course itself, graded end to end.

    sscity course demo [--students N] [--out DIR] [--jobs 2]

For every released module: students with correct, partial and blank work and with the
typical mistakes recorded in ``known-wrong.toml``; for the first module, one student per
attack or accident the grader must survive (infinite loop, memory bomb, kernel crash,
output flood, deleted / retyped / duplicated / edited cells, renamed or missing notebook,
stray file, corrupted file, swallowed exceptions, hidden tracebacks, monkeypatching,
reading the solutions, the network). ``expected.json`` says what must happen to each.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import nbformat

from .known_wrong import load_known_wrong
from .notebooks import answer_cells, grade_id, is_autograded_answer, is_test_cell, module_ids, nbgrader_meta

__all__ = ["ADVERSARIAL", "build_demo_class", "check_demo"]

_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION.*$\n?", re.M)

# name -> (what it does, what must happen: "flagged" or "zero", a word the reason must hold)
ADVERSARIAL = {
    "adv-infinite-loop": ("an answer that never ends", "flagged", "time limit"),
    "adv-memory-bomb": ("an answer that allocates memory until it fails", "flagged",
                        "memory|time limit"),
    "adv-kernel-crash": ("an answer that kills the kernel", "flagged", ""),
    "adv-output-flood": ("an answer that prints millions of lines", "ok", ""),
    "adv-deleted-test": ("deletes a test cell", "flagged", "deleted"),
    "adv-deleted-answer": ("deletes an answer cell", "flagged", "deleted"),
    "adv-retyped-cell": ("turns an answer cell into markdown", "flagged", "changed from code"),
    "adv-duplicated-cell": ("duplicates a test cell", "flagged", "duplicated"),
    "adv-edited-test": ("replaces a test cell by `pass`", "flagged", "edited"),
    "adv-renamed-notebook": ("saves the assignment under another name", "flagged", "renamed"),
    "adv-missing-notebook": ("hands in no assignment notebook", "flagged", "missing"),
    "adv-stray-file": ("adds a stray text file", "ok", "stray"),
    "adv-corrupted-file": ("hands in a damaged notebook file", "flagged", "cannot be read"),
    "adv-custom-exc": ("swallows exceptions with set_custom_exc", "zero", ""),
    "adv-hide-traceback": ("replaces showtraceback to hide errors", "zero", ""),
    "adv-monkeypatch": ("replaces numpy and built-in functions the tests use", "zero", ""),
    "adv-sneaky-patch": ("patches builtins in a way a code scan misses", "zero", ""),
    "adv-transformer": ("rewrites every later cell with an IPython input transformer", "zero", ""),
    "adv-post-run": ("clears errors after each cell (post_run_cell, custom_exc)", "zero", ""),
    "adv-float-lies": ("answers with a float whose comparisons are always true", "zero", ""),
    "adv-shadow-abs": ("rebinds abs and isinstance in its own namespace", "zero", ""),
    "adv-read-solutions": ("tries to read the solutions and the gradebook", "zero", ""),
    "adv-network": ("tries to reach the network", "zero", ""),
}

_ATTACK_CODE = {
    "adv-infinite-loop": "while True:\n    pass\n",
    "adv-memory-bomb": ("import numpy as np\nhoard, size = [], 1024**3\nwhile True:\n"
                        "    hoard.append(np.ones(size, dtype=np.uint8))\n    size *= 2\n"),
    "adv-kernel-crash": "import os\nos._exit(1)\n",
    "adv-output-flood": ("for i in range(300_000):\n    print('flood', i)\n"
                         "print('x' * 20_000_000)\n"),
    "adv-custom-exc": ("get_ipython().set_custom_exc((BaseException,),\n"
                       "                             lambda *args, **kwargs: None)\n"),
    "adv-hide-traceback": ("ip = get_ipython()\nip.showtraceback = lambda *args, **kwargs: None\n"
                           "ip.showsyntaxerror = lambda *args, **kwargs: None\n"),
    "adv-monkeypatch": ("import builtins\nimport numpy as np\nimport pandas as pd\n"
                        "np.isclose = lambda *args, **kwargs: True\n"
                        "np.allclose = lambda *args, **kwargs: True\n"
                        "builtins.isinstance = lambda *args: True\nbuiltins.abs = lambda x: 0\n"),
    "adv-sneaky-patch": ("b = __import__('built' + 'ins')\nfor name in ('abs', 'isinstance', 'len'):\n"
                         "    vars(b)[name] = (lambda *args, **kwargs: 0)\n"),
    "adv-transformer": ("ip = get_ipython()\n"
                        "ip.input_transformers_post.append(lambda lines: [l.replace('assert ', 'pass #')"
                        " for l in lines])\n"),
    "adv-post-run": ("ip = get_ipython()\nsetter = getattr(ip, 'set_' + 'custom_exc')\n"
                     "setter((BaseException,), lambda *a, **k: None)\n"
                     "def clear(result):\n    result.error_in_exec = None\n"
                     "ip.events.register('post_run_cell', clear)\n"),
    "adv-float-lies": ("class Liar(float):\n    def __eq__(self, other): return True\n"
                       "    def __lt__(self, other): return True\n    def __gt__(self, other): return True\n"
                       "    def __sub__(self, other): return Liar(0)\n    def __abs__(self): return Liar(0)\n"
                       "    __hash__ = float.__hash__\n"
                       "stations = Liar(0)\ntsukuba_midorino_m = Liar(0)\ntx_line_km = Liar(0)\n"),
    "adv-shadow-abs": ("globals()['abs'] = lambda x: 0\nglobals()['isinstance'] = lambda *a: True\n"
                       "import builtins\nbuiltins.__dict__['len'] = lambda x: 4\n"),
    "adv-read-solutions": ("import glob\nimport sscity\nfrom pathlib import Path\n"
                           "repo = Path(sscity.__file__).parents[2]\nfound = []\n"
                           "for pattern in ('solutions/*/*.ipynb', 'gradebook.db', 'submitted/*/*/*'):\n"
                           "    found += [str(p) for p in repo.glob(pattern)]\n"
                           "found += glob.glob('/tmp/*/chunks/*/gradebook.db')\n"
                           "found += glob.glob('/tmp/*/*/*/*.ipynb')\n"
                           "print('sscity-probe-found', found[:5])\n"),
    "adv-network": ("import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
                    "    print('sscity-probe network reachable')\n"
                    "except OSError as err:\n    print('sscity-probe no network:', err)\n"),
}


def _solution_code(source: str) -> str:
    return _MARKER.sub("", source)


def _answers(source_nb) -> dict[str, str]:
    return {grade_id(c): _solution_code(c.source) for c in source_nb.cells
            if c.cell_type == "code" and is_autograded_answer(c)}


def _filled(release, answers: dict[str, str], manual_text: str | None = None):
    nb = copy.deepcopy(release)
    for index, cell in enumerate(nb.cells):
        gid = grade_id(cell)
        if gid in answers and is_autograded_answer(cell):
            cell.source = answers[gid]
        if manual_text and nbgrader_meta(cell).get("task") and index + 1 < len(nb.cells):
            following = nb.cells[index + 1]
            if following.cell_type == "markdown" and not nbgrader_meta(following):
                following.source = manual_text
    return nb


def _write(folder: Path, name: str, nb) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)


def build_demo_class(root: Path, out: Path, students: int = 40, modules: list[str] | None = None,
                     adversarial: list[str] | None = None) -> dict:
    """Write a demo class under ``out/submissions`` and ``out/expected.json``; return it.

    ``modules`` and ``adversarial`` (names from :data:`ADVERSARIAL`) narrow the class, for
    tests; by default every released module and every adversarial case.
    """
    root, out = Path(root), Path(out)
    submissions = out / "submissions"
    if submissions.exists():
        shutil.rmtree(submissions)
    modules = [m for m in (modules or module_ids(root, "modules"))
               if (root / "solutions" / m).is_dir()]
    attacks = {name: ADVERSARIAL[name] for name in (adversarial or ADVERSARIAL)}
    if not modules:
        raise ValueError("No released module to build a demo class from: run `sscity course release`.")
    expected: dict[str, dict] = {}
    honest_names = []
    for module in modules:
        release_dir, source_dir = root / "modules" / module, root / "solutions" / module
        # Students hand in the graded notebooks (the lesson earns no points).
        releases = {p.name: nbformat.read(p, as_version=4) for p in sorted(release_dir.glob("*.ipynb"))}
        releases = {name: nb for name, nb in releases.items()
                    if any(nbgrader_meta(c).get("points") for c in nb.cells)}
        answers = {name: _answers(nbformat.read(source_dir / name, as_version=4)) for name in releases}
        manual = "An honest, short interpretation. / 正直で短い解釈です。"
        correct = {name: _filled(nb, answers[name], manual) for name, nb in releases.items()}
        wrongs = load_known_wrong(source_dir)
        graded_names = [name for name, nb in releases.items() if answer_cells(nb)]

        def hand_in(student, notebooks, module=module, kind="honest", note=""):
            (submissions / student / module).mkdir(parents=True, exist_ok=True)
            for name, nb in notebooks.items():
                _write(submissions / student / module, name, nb)
            expected.setdefault(student, {})[module] = {"kind": kind, "note": note}

        honest = []
        for i in range(1, 4):
            honest.append((f"correct-{i:02d}", correct, "all answers correct"))
        for i, keep in enumerate((0.5, 0.25), start=1):
            partial = {}
            for name, nb in releases.items():
                ids = list(answers[name])
                kept = dict(list(answers[name].items())[: int(len(ids) * keep)])
                partial[name] = _filled(nb, kept)
            honest.append((f"partial-{i:02d}", partial, f"{int(keep * 100)} % of answers"))
        for i in range(1, 3):
            honest.append((f"blank-{i:02d}", releases, "nothing answered"))
        for i, wrong in enumerate(wrongs, start=1):
            name = f"{wrong.notebook}.ipynb"
            notebooks = dict(correct)
            notebooks[name] = _filled(releases[name], {**answers[name], wrong.answer: wrong.code})
            honest.append((f"mistake-{i:02d}", notebooks, f"{wrong.answer}: {wrong.mistake}"))
        for student, notebooks, note in honest:
            hand_in(student, notebooks, note=note)
            honest_names.append(student)

        if module != modules[0] or not graded_names:
            continue
        main = graded_names[0]
        release = releases[main]
        first_answer = next(gid for gid in answers[main])
        for student, (what, _, _) in attacks.items():
            notebooks = dict(correct)
            nb = copy.deepcopy(correct[main])
            if student in _ATTACK_CODE:
                attack = _ATTACK_CODE[student]
                if student in ("adv-custom-exc", "adv-hide-traceback", "adv-monkeypatch",
                               "adv-sneaky-patch", "adv-read-solutions", "adv-network",
                               "adv-transformer", "adv-post-run", "adv-float-lies",
                               "adv-shadow-abs"):
                    # Wrong answers everywhere, plus the trick in the first answer cell.
                    nb = _filled(release, {gid: "pass" for gid in answers[main]})
                    attack = attack + "\n"
                nb = _filled(nb, {first_answer: attack})
            elif student == "adv-deleted-test":
                nb.cells = [c for c in nb.cells
                            if not (is_test_cell(c) and grade_id(c).startswith(first_answer))]
            elif student == "adv-deleted-answer":
                nb.cells = [c for c in nb.cells if grade_id(c) != first_answer]
            elif student == "adv-retyped-cell":
                index = answer_cells(nb)[first_answer]
                nb.cells[index] = nbformat.v4.new_markdown_cell(nb.cells[index].source,
                                                                metadata=nb.cells[index].metadata)
            elif student == "adv-duplicated-cell":
                index = next(i for i, c in enumerate(nb.cells) if is_test_cell(c))
                duplicate = copy.deepcopy(nb.cells[index])
                duplicate["id"] = "duplicated-cell"
                nb.cells.insert(index + 1, duplicate)
            elif student == "adv-edited-test":
                nb = _filled(release, {})
                for cell in nb.cells:
                    if is_test_cell(cell):
                        cell.source = "pass"
            if student == "adv-renamed-notebook":
                notebooks.pop(main)
                notebooks[main.replace(".ipynb", " (1).ipynb")] = nb
            elif student == "adv-missing-notebook":
                notebooks.pop(main)
            else:
                notebooks[main] = nb
            hand_in(student, notebooks, kind="adversarial", note=what)
            folder = submissions / student / module
            if student == "adv-stray-file":
                (folder / "notes.txt").write_text("my notes\n")
            if student == "adv-corrupted-file":
                (folder / main).write_text('{"cells": [ this is not json')
    # --students trims the honest students (every adversarial one stays).
    keep_honest = max(0, students - len(attacks))
    for name in sorted(set(honest_names))[keep_honest:]:
        if name.startswith(("correct-01", "blank-01")):
            continue
        shutil.rmtree(submissions / name, ignore_errors=True)
        expected.pop(name, None)
    payload = {"students": expected, "adversarial": {k: {"what": v[0], "must": v[1], "reason": v[2]}
                                                    for k, v in attacks.items()}}
    (out / "expected.json").write_text(json.dumps(payload, ensure_ascii=False, indent=1))
    return payload


def check_demo(results, expected: dict) -> list[str]:
    """What went wrong in a graded demo class: each adversarial student must be caught,
    every honest correct student must get full marks."""
    problems = []
    by_student = {}
    for result in results:
        by_student.setdefault(result.student, []).append(result)
    for student, rule in expected["adversarial"].items():
        graded = by_student.get(student)
        if not graded:
            problems.append(f"{student}: not graded at all")
            continue
        result = graded[0]
        must, word = rule["must"], rule["reason"]
        if must == "flagged" and result.status != "flagged":
            problems.append(f"{student} ({rule['what']}) was not flagged: {result.score}/{result.max_score}")
        if must == "zero" and result.score > 0:
            problems.append(f"{student} ({rule['what']}) earned {result.score} points")
        if word and not re.search(word, result.reason):
            problems.append(f"{student}: reason lacks {word!r}: {result.reason!r}")
    for student, modules in expected["students"].items():
        for module in modules:
            if student.startswith("correct-"):
                result = next((r for r in by_student.get(student, []) if r.module == module), None)
                if result is None or result.score != result.max_score or result.status != "ok":
                    got = ("not graded" if result is None
                           else f"{result.score}/{result.max_score} {result.status}")
                    problems.append(f"{student}/{module} (all correct) got {got}")
    return problems
