"""Integrity of a submission: what a student changed that they should not have, and
whether the grading itself can be trusted.

Three layers, each giving plain reasons an instructor can read:

1. **Structure** (before grading): compare the submitted notebook with the release --
   deleted, duplicated or retyped graded cells, edited test cells, renamed or missing
   notebooks. nbgrader restores test cells from its gradebook, so most of these are
   *flagged* but still graded honestly.
2. **Code scan** (before grading): student-written code that reaches into the machinery
   tests rely on -- IPython's exception handling (``set_custom_exc``, ``showtraceback``),
   ``sys.excepthook``, builtins, or attributes of numpy/pandas/math.
3. **Canaries** (during grading): hidden check cells with a random nonce are inserted
   after every test cell; each must fail loudly. If one stays silent, exceptions are being
   swallowed and the points of the tests before it cannot be trusted. A first and a last
   cell fingerprint builtins and the numpy/pandas functions tests use, so monkeypatching is
   seen even when the code scan misses it.

Scores of tampered submissions are withheld (set to 0) with the reason; structural
problems keep nbgrader's honest score but are flagged for a person to look at.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from dataclasses import dataclass

import nbformat

from .notebooks import grade_id, is_test_cell, nbgrader_meta

__all__ = [
    "Finding",
    "add_canaries",
    "check_canaries",
    "check_structure",
    "scan_code",
    "unexecuted_test_cells",
]

CANARY_TAG = "sscity-integrity"


@dataclass
class Finding:
    """One problem found in a submission."""

    kind: str  # "structure", "tampering", "grading"
    message: str
    withhold: bool = False  # True: the score cannot be trusted and is set to 0

    def __str__(self) -> str:
        return self.message


# --- 1. structure ----------------------------------------------------------------------

def check_structure(submitted, released) -> list[Finding]:
    """Compare graded cells of a submitted notebook with the released one."""
    findings = []
    want = {grade_id(c): c for c in released.cells if grade_id(c)}
    seen: dict[str, list] = {}
    for cell in submitted.cells:
        gid = grade_id(cell)
        if gid:
            seen.setdefault(gid, []).append(cell)
    for gid, cell in want.items():
        copies = seen.get(gid, [])
        if not copies:
            findings.append(Finding("structure", f"cell '{gid}' was deleted"))
            continue
        if len(copies) > 1:
            findings.append(Finding("structure", f"cell '{gid}' was duplicated ({len(copies)} copies)"))
        got = copies[0]
        if got.cell_type != cell.cell_type:
            findings.append(Finding("structure", f"cell '{gid}' was changed from {cell.cell_type} "
                                                 f"to {got.cell_type}"))
        elif is_test_cell(cell) and got.source.strip() != cell.source.strip():
            findings.append(Finding("structure", f"test cell '{gid}' was edited (the original "
                                                 "was restored before grading)"))
    for gid in sorted(set(seen) - set(want)):
        findings.append(Finding("structure", f"unknown graded cell '{gid}' (not in the release)"))
    return findings


# --- 2. code scan ------------------------------------------------------------------------

_BUILTIN_NAMES = {"abs", "all", "any", "bool", "float", "int", "isinstance", "len", "max", "min",
                  "round", "set", "sorted", "str", "sum", "tuple", "type", "list", "dict",
                  "AssertionError", "Exception", "BaseException", "print", "hasattr", "getattr"}
_GUARDED_MODULES = {"np", "numpy", "pd", "pandas", "math", "builtins", "sys", "gpd", "geopandas",
                    "scipy", "statsmodels", "sm", "smf", "IPython", "__builtins__", "shapely"}
_SUSPICIOUS_CALLS = {
    "set_custom_exc": "replaces IPython's exception handling (set_custom_exc)",
    "showtraceback": "touches IPython's traceback display (showtraceback)",
    "excepthook": "replaces sys.excepthook",
    "unregister": "unregisters IPython event callbacks",
    "CustomTB": "replaces IPython's custom traceback handler",
    "InteractiveTB": "replaces IPython's traceback handler",
}


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def scan_code(source: str) -> list[str]:
    """Reasons why a piece of student code looks like it tampers with grading."""
    found = []
    cleaned = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                        for line in source.splitlines())
    try:
        tree = ast.parse(cleaned)
    except SyntaxError:
        return found  # a syntax error fails honestly
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _SUSPICIOUS_CALLS:
            found.append(_SUSPICIOUS_CALLS[node.attr])
        elif isinstance(node, ast.Name) and node.id in _SUSPICIOUS_CALLS:
            found.append(_SUSPICIOUS_CALLS[node.id])
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id in _BUILTIN_NAMES:
                found.append(f"redefines the built-in '{target.id}'")
            elif isinstance(target, ast.Attribute) and _root_name(target) in _GUARDED_MODULES:
                found.append(f"assigns to {ast.unparse(target)} (monkeypatching a library)")
            elif isinstance(target, ast.Subscript) and _root_name(target.value) == "__builtins__":
                found.append("edits __builtins__")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in {"setattr", "delattr"} and node.args
                and _root_name(node.args[0]) in _GUARDED_MODULES):
            found.append(f"{node.func.id} on {ast.unparse(node.args[0])} (monkeypatching a library)")
        if (isinstance(node, (ast.FunctionDef, ast.ClassDef))
                and node.name in _BUILTIN_NAMES):
            found.append(f"redefines the built-in '{node.name}'")
    return sorted(set(found))


# --- 3. canaries -------------------------------------------------------------------------

_FINGERPRINT = '''\
# {tag}: fingerprint of the functions tests rely on (added by the grader)
def _sscity_fingerprint_{nonce}():
    import builtins, math
    import numpy, pandas
    parts = {{"builtins": builtins, "math": math, "numpy": numpy, "pandas": pandas,
             "numpy.testing": numpy.testing, "pandas.testing": pandas.testing,
             "pandas.Series": pandas.Series, "pandas.DataFrame": pandas.DataFrame,
             "numpy.ndarray": numpy.ndarray}}
    # ipykernel swaps input/getpass at every execution: not the student's doing.
    volatile = {{"builtins.input", "builtins.raw_input", "builtins.getpass"}}
    return {{f"{{name}}.{{key}}": id(value) for name, space in parts.items()
            for key, value in vars(space).items()
            if callable(value) and f"{{name}}.{{key}}" not in volatile}}
_sscity_before_{nonce} = _sscity_fingerprint_{nonce}()
'''
_CANARY = '''\
# {tag}: this check must fail (added by the grader)
raise AssertionError("sscity-canary-{nonce}-{number}")
'''
_FINAL = '''\
# {tag}: did anything replace the functions tests rely on? (added by the grader)
_sscity_after_{nonce} = _sscity_fingerprint_{nonce}()
print("sscity-changed-{nonce}" + __import__("json").dumps(sorted(
    k for k, v in _sscity_before_{nonce}.items() if _sscity_after_{nonce}.get(k) != v)))
'''


def _integrity_cell(source: str):
    return nbformat.v4.new_code_cell(source, metadata={"tags": [CANARY_TAG]})


def add_canaries(nb, nonce: str | None = None):
    """Return ``(notebook, nonce)``: a copy with integrity cells inserted.

    A fingerprint cell first, a canary after each test cell, a final fingerprint check.
    The nonce is random per submission, so student code cannot recognise the canaries.
    """
    nonce = nonce or secrets.token_hex(8)
    out = nbformat.from_dict(json.loads(json.dumps(nb)))
    cells = [_integrity_cell(_FINGERPRINT.format(tag=CANARY_TAG, nonce=nonce))]
    number = 0
    for cell in out.cells:
        cells.append(cell)
        if is_test_cell(cell):
            number += 1
            cells.append(_integrity_cell(_CANARY.format(tag=CANARY_TAG, nonce=nonce, number=number)))
    cells.append(_integrity_cell(_FINAL.format(tag=CANARY_TAG, nonce=nonce)))
    out.cells = cells
    return out, nonce


def _is_integrity(cell) -> bool:
    return CANARY_TAG in cell.get("metadata", {}).get("tags", [])


def check_canaries(graded, nonce: str) -> tuple[list[Finding], set[str]]:
    """Read the integrity cells of a graded notebook.

    Returns findings and the grade_ids of test cells whose points cannot be trusted
    (every test up to the last canary that stayed silent).
    """
    findings, untrusted = [], set()
    tests_so_far: list[str] = []
    silent = 0
    final_seen = False
    for cell in graded.cells:
        if is_test_cell(cell) and not _is_integrity(cell):
            tests_so_far.append(grade_id(cell))
        if not _is_integrity(cell):
            continue
        source = cell.source
        if "raise AssertionError" in source:
            failed_loudly = any(o.get("output_type") == "error" and nonce in str(o.get("evalue", ""))
                                for o in cell.get("outputs", []))
            if not failed_loudly:
                silent += 1
                untrusted.update(tests_so_far)
        elif "sscity-changed-" in source:
            text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                           if o.get("output_type") == "stream")
            match = re.search(rf"sscity-changed-{nonce}(\[.*?\])", text)
            if match:
                final_seen = True
                changed = json.loads(match.group(1))
                if changed:
                    shown = ", ".join(changed[:5]) + (" …" if len(changed) > 5 else "")
                    findings.append(Finding("tampering", f"replaced functions that tests rely on: "
                                                         f"{shown}", withhold=True))
                    untrusted.update(tests_so_far)
    if silent:
        findings.append(Finding("tampering", f"exceptions were suppressed: {silent} grader check(s) "
                                             "that must fail raised no error", withhold=True))
    if not final_seen and not silent:
        findings.append(Finding("grading", "the notebook did not run to the end (the kernel died, "
                                           "was stopped, or timed out)"))
    return findings, untrusted


def runtime_findings(graded) -> list[Finding]:
    """Limits the student's code ran into: time, memory (graded honestly, but worth a look)."""
    findings, seen = [], set()
    for index, cell in enumerate(graded.cells):
        if _is_integrity(cell):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            ename = output.get("ename", "")
            if ename in ("KeyboardInterrupt", "CellTimeoutError") and "time" not in seen:
                seen.add("time")
                findings.append(Finding("grading", f"a cell ({grade_id(cell) or f'cell {index}'}) ran "
                                                   "past the time limit and was stopped"))
            elif ename == "MemoryError" and "memory" not in seen:
                seen.add("memory")
                findings.append(Finding("grading", f"a cell ({grade_id(cell) or f'cell {index}'}) ran "
                                                   "out of memory (the limit was reached)"))
    return findings


def unexecuted_test_cells(graded) -> list[str]:
    """grade_ids of test cells that never ran: they must not earn points."""
    return [grade_id(c) for c in graded.cells
            if is_test_cell(c) and not _is_integrity(c) and c.get("execution_count") is None
            and not c.get("outputs")]


def strip_integrity_cells(nb):
    """The notebook without the grader's integrity cells (for feedback)."""
    out = nbformat.from_dict(json.loads(json.dumps(nb)))
    out.cells = [c for c in out.cells if not _is_integrity(c)]
    return out


def student_code(nb) -> str:
    """All code a student wrote or could edit: code cells that are not locked."""
    return "\n\n".join(c.source for c in nb.cells
                       if c.cell_type == "code" and not nbgrader_meta(c).get("locked")
                       and not _is_integrity(c))


__all__ += ["runtime_findings", "strip_integrity_cells", "student_code"]

