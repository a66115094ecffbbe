"""Integrity of a submission: what a student changed that they should not have.

Two layers, each giving plain reasons an instructor can read:

1. **Structure** (before grading): compare the submitted notebook with the release --
   deleted, duplicated or retyped graded cells, edited test cells, renamed or missing
   notebooks. nbgrader restores test cells from its gradebook, so most of these are
   *flagged* but still graded honestly.
2. **Code scan** (before grading): code in any code cell (whatever its metadata says) that
   reaches into the machinery tests used to rely on -- IPython's exception handling
   (``set_custom_exc``, ``showtraceback``), ``sys.excepthook``, input and AST transformers,
   event callbacks, builtins, or attributes of numpy/pandas/math. The tests run apart from
   the student's code (:mod:`sscity.course.trusted`), so such code cannot change a score:
   the findings are *advisory*, for a person to look at. Display options and names that
   shadow a built-in are honest and not findings.
"""

from __future__ import annotations

import ast
import functools
import secrets
import textwrap
from dataclasses import dataclass

from .notebooks import grade_id, is_test_cell, without_magics

__all__ = [
    "Finding",
    "check_structure",
    "scan_code",
    "scan_findings",
    "unexecuted_test_cells",
]



@dataclass
class Finding:
    """One problem found in a submission."""

    kind: str  # "structure", "tampering", "grading"
    message: str
    withhold: bool = False  # True: the score cannot be trusted and is set to 0
    # True: a guess from reading the code (the code scan), not proof; it asks for a person
    # to look, and the caller decides whether to withhold the score.
    advisory: bool = False

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
#
# A static look at everything a notebook would run. It names tricks that reach into what
# the tests rely on; it is a guess from the text, not proof, so
# its findings are advisory and the caller decides whether a score is withheld. Not findings:
# display and print options (``pd.options.display.max_columns = 50``, ``pd.set_option``,
# ``np.set_printoptions``): they change how values look, not what tests compute; and names
# that shadow a built-in (``max = stations["lat"].max()``, ``list = [...]``): tests run where
# a student's names cannot shadow built-ins.

_GUARDED_MODULES = {"np", "numpy", "pd", "pandas", "math", "builtins", "sys", "gpd", "geopandas",
                    "scipy", "statsmodels", "sm", "smf", "IPython", "__builtins__", "shapely",
                    "numbers", "collections", "ipykernel"}
# Top-level packages whose imported names (under any alias) are guarded too.
_GUARDED_PACKAGES = {"numpy", "pandas", "math", "builtins", "sys", "geopandas", "scipy",
                     "statsmodels", "IPython", "shapely", "numbers", "collections", "ipykernel"}
_SUSPICIOUS_CALLS = {
    "set_custom_exc": "replaces IPython's exception handling (set_custom_exc)",
    "showtraceback": "touches IPython's traceback display (showtraceback)",
    "showsyntaxerror": "touches IPython's syntax error display (showsyntaxerror)",
    "excepthook": "replaces sys.excepthook",
    "unregister": "unregisters IPython event callbacks",
    "CustomTB": "replaces IPython's custom traceback handler",
    "InteractiveTB": "replaces IPython's traceback handler",
    "SyntaxTB": "replaces IPython's syntax error handler",
    "input_transformers_cleanup": "adds an IPython input transformer (input_transformers_cleanup)",
    "input_transformers_post": "adds an IPython input transformer (input_transformers_post)",
    "input_transformer_manager": "replaces IPython's input transformers (input_transformer_manager)",
    "ast_transformers": "adds an IPython AST transformer (ast_transformers)",
    "error_in_exec": "touches the error of a cell's result (error_in_exec)",
    "error_before_exec": "touches the error of a cell's result (error_before_exec)",
}
_EVENTS = {"pre_execute", "pre_run_cell", "post_execute", "post_run_cell"}
# Aliases of a library that keep it guarded: classes (pd.DataFrame), namespaces (np.testing).
_GUARDED_ATTRIBUTES = {"testing", "linalg", "random", "api", "core", "modules", "ndarray", "__dict__"}
# Calls that run code given as text: the text is scanned too.
_RUNS_TEXT = {"exec", "eval", "compile", "run_cell", "run_line_magic", "run_cell_magic", "ex", "ev"}
_NAMESPACE_EDITS = {"update", "setdefault", "__setitem__", "__delitem__", "pop", "popitem", "clear"}
_CELL_HEADER = "# sscity-cells "
_MAX_FOLDED = 10_000


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _chain(node: ast.AST) -> tuple[ast.AST, list[str]]:
    """``np.a["k"].b`` -> (the node of ``np``, ["a", "[]", "b"])."""
    parts = []
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        parts.append(node.attr if isinstance(node, ast.Attribute) else "[]")
        node = node.value
    return node, parts[::-1]


def _fold(node: ast.AST, depth: int = 0) -> str | None:
    """The text a string expression built only from literals evaluates to (else None):
    ``'set_' + 'custom_exc'``, ``''.join([...])``, ``'cxe'[::-1]``, f-strings of literals."""
    if depth > 20:
        return None
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return node.value
        if isinstance(node.value, bytes):
            return node.value.decode("latin-1")
        return None
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            inner = value.value if isinstance(value, ast.FormattedValue) else value
            text = _fold(inner, depth + 1)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _fold(node.left, depth + 1), _fold(node.right, depth + 1)
        if left is None or right is None or len(left) + len(right) > _MAX_FOLDED:
            return None
        return left + right
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        for text_node, count_node in ((node.left, node.right), (node.right, node.left)):
            text = _fold(text_node, depth + 1)
            if (text is not None and isinstance(count_node, ast.Constant)
                    and type(count_node.value) is int and len(text) * count_node.value <= _MAX_FOLDED):
                return text * max(count_node.value, 0)
        return None
    if isinstance(node, ast.Subscript):
        text = _fold(node.value, depth + 1)
        if text is None:
            return None
        index = node.slice
        if isinstance(index, ast.Slice):
            bounds = []
            for part in (index.lower, index.upper, index.step):
                if part is None:
                    bounds.append(None)
                    continue
                try:
                    bound = ast.literal_eval(part)
                except (ValueError, TypeError, SyntaxError):
                    return None
                if type(bound) is not int or bound == 0 and part is index.step:
                    return None
                bounds.append(bound)
            return text[slice(*bounds)]
        try:
            position = ast.literal_eval(index)
        except (ValueError, TypeError, SyntaxError):
            return None
        return text[position] if type(position) is int and -len(text) <= position < len(text) else None
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if isinstance(func, ast.Name) and func.id in {"str", "reversed"} and len(node.args) == 1:
            text = _fold(node.args[0], depth + 1)
            return None if text is None else (text if func.id == "str" else text[::-1])
        if isinstance(func, ast.Name) and func.id == "chr" and len(node.args) == 1:
            try:
                code = ast.literal_eval(node.args[0])
                return chr(code) if type(code) is int else None
            except (ValueError, TypeError, SyntaxError, OverflowError):
                return None
        if isinstance(func, ast.Attribute):
            receiver = _fold(func.value, depth + 1)
            if receiver is None:
                return None
            args = [_fold(a, depth + 1) if not isinstance(a, (ast.List, ast.Tuple)) else
                    [_fold(e, depth + 1) for e in a.elts] for a in node.args]
            if func.attr == "join" and len(args) == 1:
                items = args[0]
                if items is None or isinstance(items, list) and None in items:
                    return None
                joined = receiver.join(items)
                return joined if len(joined) <= _MAX_FOLDED else None
            if any(not isinstance(a, str) for a in args):
                return None
            if func.attr in {"lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize",
                             "swapcase", "casefold", "decode", "encode"} and len(args) <= 1:
                return getattr(receiver, func.attr)(*args) if func.attr not in {"decode", "encode"} \
                    else receiver
            if func.attr == "replace" and len(args) == 2:
                replaced = receiver.replace(*args)
                return replaced if len(replaced) <= _MAX_FOLDED else None
    return None


@functools.cache
def _transformer():
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython ships with the course
        return None
    return TransformerManager()


def _as_python(cell: str) -> str:
    """A cell as IPython runs it: magics and ``!`` commands become ``get_ipython()`` calls."""
    manager = _transformer()
    if manager is not None:
        try:
            return manager.transform_cell(cell)
        except Exception:  # noqa: BLE001 - fall back to blanking IPython syntax
            pass
    return without_magics(cell)


def _parse_text(text: str, magic: bool = False) -> ast.Module | None:
    """Parse code given as text; for a magic's line, retry without its leading options."""
    attempts = [text]
    if magic:
        attempts += [text.split(None, k)[-1] for k in range(1, 5) if len(text.split(None, k)) > k]
    for attempt in attempts:
        try:
            return ast.parse(textwrap.dedent(attempt))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def _embedded(tree: ast.AST, depth: int = 0) -> list[ast.Module]:
    """Code run from text inside ``tree``: exec/eval, magics (``%time ...``, ``%%capture``)."""
    found = []
    if depth >= 3:
        return found
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name not in _RUNS_TEXT:
            continue
        for arg in node.args:
            text = _fold(arg)
            inner = _parse_text(text, magic=name.endswith("magic")) if text else None
            if inner is not None:
                found += [inner, *_embedded(inner, depth + 1)]
    return found


class _Scan:
    """Aliases seen in the code (``import numpy as n``, ``ip = get_ipython()``) and findings."""

    def __init__(self) -> None:
        self.guarded = set(_GUARDED_MODULES)
        self.shells: set[str] = set()
        self.factories = {"get_ipython"}
        self.events: set[str] = set()
        self.found: set[str] = set()

    # what an expression refers to: "guarded" (a library), "shell" (IPython), or None
    def kind(self, node: ast.AST) -> str | None:
        base, _ = _chain(node)
        if isinstance(base, ast.Name):
            if base.id in self.guarded:
                return "guarded"
            if base.id in self.shells or base.id in self.events:
                return "shell"
            return None
        if isinstance(base, ast.Call):
            func = base.func
            name = (func.id if isinstance(func, ast.Name)
                    else func.attr if isinstance(func, ast.Attribute) else None)
            if name in self.factories:
                return "shell"
            if name in {"__import__", "import_module"} and base.args:
                module = _fold(base.args[0])
                return "guarded" if module and module.split(".")[0] in _GUARDED_PACKAGES else None
            if name in {"vars", "getattr"} and base.args:
                return self.kind(base.args[0])
        return None

    def learn(self, trees: list[ast.AST]) -> None:
        """Collect aliases until nothing new is learnt (an alias may use an earlier one)."""
        for _ in range(5):
            before = (len(self.guarded), len(self.shells), len(self.factories), len(self.events))
            for tree in trees:
                for node in ast.walk(tree):
                    self._learn(node)
            if before == (len(self.guarded), len(self.shells), len(self.factories), len(self.events)):
                return

    def _learn(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in _GUARDED_PACKAGES:
                    self.guarded.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] in _GUARDED_PACKAGES:
                for alias in node.names:
                    if alias.name == "get_ipython":
                        self.factories.add(alias.asname or alias.name)
                    elif alias.name != "*":
                        self.guarded.add(alias.asname or alias.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if names:
                self._bind(names, node.value)

    def _bind(self, names: list[str], value: ast.AST) -> None:
        _, parts = _chain(value)
        kind = self.kind(value)
        if isinstance(value, ast.Name) and value.id in self.factories:
            self.factories.update(names)
        elif kind == "shell":
            if isinstance(value, ast.Call) or parts:
                target = self.events if parts and parts[-1] == "events" else self.shells
                target.update(names)
            else:
                self.shells.update(names)
        elif kind == "guarded":
            if isinstance(value, ast.Name) or isinstance(value, ast.Call) and not parts:
                self.guarded.update(names)
            elif parts and (parts[-1] in _GUARDED_ATTRIBUTES or parts[-1][:1].isupper()):
                self.guarded.update(names)

    # --- findings
    def add(self, reason: str) -> None:
        self.found.add(reason)

    def scan(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                if node.attr in _SUSPICIOUS_CALLS:
                    self.add(_SUSPICIOUS_CALLS[node.attr])
                elif node.attr == "events" and self.kind(node.value) == "shell":
                    self.add("uses IPython's event callbacks (events)")
            elif isinstance(node, ast.Name) and node.id in _SUSPICIOUS_CALLS:
                self.add(_SUSPICIOUS_CALLS[node.id])
            elif isinstance(node, ast.alias) and node.name.split(".")[-1] in _SUSPICIOUS_CALLS:
                self.add(_SUSPICIOUS_CALLS[node.name.split(".")[-1]])
            if isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp, ast.Call, ast.Subscript)):
                self._text(_fold(node))
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor,
                                 ast.Delete)):
                targets = (node.targets if isinstance(node, (ast.Assign, ast.Delete))
                           else [node.target])
                verb = "deletes" if isinstance(node, ast.Delete) else "assigns to"
                for target in targets:
                    self._target(target, verb)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        self._target(item.optional_vars, "assigns to")
            elif isinstance(node, ast.Call):
                self._call(node)

    def _text(self, text: str | None) -> None:
        if not text:
            return
        for name, reason in _SUSPICIOUS_CALLS.items():
            if name in text:
                self.add(f"{reason} (named in a string)")
        if text.strip() in _EVENTS:
            self.add(f"refers to the IPython event '{text.strip()}'")

    def _target(self, target: ast.AST, verb: str) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(element, verb)
            return
        if isinstance(target, ast.Starred):
            self._target(target.value, verb)
            return
        if isinstance(target, ast.Name):
            if target.id == "__builtins__":
                self.add("rebinds __builtins__")
            return  # shadowing a built-in is not a finding
        if not isinstance(target, (ast.Attribute, ast.Subscript)):
            return
        kind = self.kind(target)
        if kind == "guarded" and not _is_option(target):
            if isinstance(target, ast.Subscript) and _root_name(target.value) == "__builtins__":
                self.add("edits __builtins__")
            else:
                self.add(f"{verb} {ast.unparse(target)} (monkeypatching a library)")
        elif kind == "shell":
            self.add(f"{verb} {ast.unparse(target)} (changes the IPython shell)")

    def _call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        obj, attribute = None, None
        if isinstance(func, ast.Name) and name in {"setattr", "delattr", "getattr", "hasattr"} and node.args:
            obj, attribute = node.args[0], node.args[1] if len(node.args) > 1 else None
        elif name in {"__setattr__", "__delattr__"} and isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id in {"object", "type"} and node.args:
                obj, attribute = node.args[0], node.args[1] if len(node.args) > 1 else None
            else:
                obj, attribute = func.value, node.args[0] if node.args else None
            name = name.strip("_")
        if obj is not None:
            kind = self.kind(obj)
            if name in {"setattr", "delattr"} and kind == "guarded" and not _is_option(obj):
                self.add(f"{name} on {ast.unparse(obj)} (monkeypatching a library)")
            elif name in {"setattr", "delattr"} and kind == "shell":
                self.add(f"{name} on {ast.unparse(obj)} (changes the IPython shell)")
            elif kind == "shell" and attribute is not None and _fold(attribute) is None:
                self.add(f"{name} on the IPython shell with a computed name")
        if name == "register" and isinstance(func, ast.Attribute):
            event = _fold(node.args[0]) if node.args else None
            receiver_base, parts = _chain(func.value)
            is_events = ((parts and parts[-1] == "events")
                         or isinstance(func.value, ast.Name) and func.value.id in self.events
                         or event in _EVENTS)
            if is_events:
                self.add(f"registers an IPython event callback ({event or 'unknown event'}), "
                         "events.register")
            elif self.kind(func.value) == "guarded":
                self.add(f"registers a class with {ast.unparse(func.value)} (changes what "
                         "isinstance accepts)")
        if name in _NAMESPACE_EDITS and isinstance(func, ast.Attribute):
            receiver = func.value
            _, parts = _chain(receiver)
            is_namespace = (isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name)
                            and receiver.func.id == "vars") or (parts and parts[-1] == "__dict__")
            if is_namespace and self.kind(receiver) == "guarded":
                self.add(f"edits the namespace of a library ({ast.unparse(receiver)})")


def _is_option(node: ast.AST) -> bool:
    """``pd.options.display.max_columns``, ``gpd.options.io_engine``: display and mode options."""
    _, parts = _chain(node)
    return (len(parts) >= 2 and parts[0] == "options"
            and all(p != "[]" and not p.startswith("__") for p in parts))


def _cells(source: str) -> list[str]:
    """Split what :func:`student_code` joined back into cells (one cell for any other text)."""
    first, _, rest = source.partition("\n")
    if first.startswith(_CELL_HEADER):
        nonce = first[len(_CELL_HEADER):].strip()
        return rest.split(f"\n# sscity-cell {nonce}\n")
    return [source]


def scan_code(source: str) -> list[str]:
    """Reasons why a piece of student code looks like it tampers with grading (advisory).

    ``source`` is one cell, or the cells :func:`student_code` joined. Each cell is read as
    IPython runs it (magics included, and code run from text by exec or a magic); a cell
    that does not parse still has the names it mentions checked.
    """
    trees, broken = [], []
    for cell in _cells(source):
        tree = _parse_text(_as_python(cell))
        if tree is None:
            broken.append(cell)
        else:
            trees += [tree, *_embedded(tree)]
    if broken and len(_cells(source)) > 1:
        whole = _parse_text(_as_python(source))  # a cell split where it should not be
        if whole is not None:
            trees += [whole, *_embedded(whole)]
    scan = _Scan()
    scan.learn(trees)
    for tree in trees:
        scan.scan(tree)
    for cell in broken:
        for name, reason in _SUSPICIOUS_CALLS.items():
            if name in cell:
                scan.add(f"{reason} (in code that does not parse)")
        for event in _EVENTS:
            if event in cell:
                scan.add(f"refers to the IPython event '{event}' (in code that does not parse)")
    return sorted(scan.found)


def scan_findings(source: str, where: str = "") -> list[Finding]:
    """The reasons of :func:`scan_code` as advisory findings, flagged for a person to look at
    and never withholding a score: the tests ran apart from this code."""
    prefix = f"{where}: " if where else ""
    return [Finding("tampering", f"{prefix}code {reason} (flagged for review; the tests ran apart "
                                 "from this code)", advisory=True) for reason in scan_code(source)]


def unexecuted_test_cells(graded) -> list[str]:
    """grade_ids of test cells that never ran: they must not earn points."""
    return [grade_id(c) for c in graded.cells
            if is_test_cell(c) and c.get("execution_count") is None
            and not c.get("outputs")]


def student_code(nb) -> str:
    """All code a notebook would run, cell by cell, for :func:`scan_code`.

    Every code cell counts, whatever its metadata says: a student can mark a cell locked,
    or tag it as a grader cell, to hide it. The cells are joined with separators carrying a
    random nonce (a line a student cannot forge), so the scan reads them one by one.
    """
    nonce = secrets.token_hex(8)
    separator = f"\n# sscity-cell {nonce}\n"
    return f"{_CELL_HEADER}{nonce}\n" + separator.join(c.source for c in nb.cells
                                                      if c.cell_type == "code")


__all__ += ["student_code"]

