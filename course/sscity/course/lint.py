"""Course lint: the authoring rules of ``course/AUTHORING.md`` as functions.

Each ``check_*`` function takes notebooks (see :func:`sscity.course.notebooks.iter_notebooks`)
and returns a list of problems, one readable line each; an empty list means the rule holds.
``tests/test_course_lint.py`` runs them all over the course.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from .known_wrong import load_known_wrong
from .notebooks import (
    SOLUTION_MARKERS,
    CourseNotebook,
    cell_names,
    grade_id,
    is_autograded_answer,
    is_graded,
    is_manual_answer,
    is_test_cell,
    nbgrader_meta,
    tier,
    without_magics,
)

__all__ = [
    "GlossaryEntry",
    "check_answers_followed_by_tests",
    "check_bilingual_figure_labels",
    "check_bilingual_markdown",
    "check_bilingual_test_messages",
    "check_figures_described",
    "check_glossary",
    "check_recurrent_path_box",
    "check_japanese_line_breaks",
    "check_known_wrong_coverage",
    "check_legend_sizes",
    "check_list_numbering",
    "check_no_leaks",
    "check_no_outputs",
    "check_points_total",
    "check_ruff",
    "check_schema_version",
    "check_tiers",
    "check_unique_grade_ids",
    "is_bilingual",
    "japanese_line_breaks",
    "join_japanese_lines",
    "load_glossary",
    "module_readmes",
]

ASSIGNMENT = "assignment"
POINTS_PER_ASSIGNMENT = 100
SCHEMA_VERSION = 3

_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_LINK_TARGET = re.compile(r"\]\([^)]*\)|https?://\S+|<[^>]+>")
_ENGLISH_FUNCTION_WORDS = {
    "the", "a", "an", "of", "to", "is", "are", "in", "and", "or", "you", "your", "we", "it",
    "this", "that", "for", "with", "what", "how", "on", "by", "be", "as", "at", "from", "not",
}


def is_bilingual(text: str) -> bool:
    """Whether prose carries both English and Japanese in comparable measure.

    Code spans, links and URLs are ignored. Short text (a heading) needs one English word
    and two Japanese characters; longer English prose needs English function words and a
    Japanese part of reasonable length, so one Japanese word in an English paragraph (or
    the reverse) does not pass.
    """
    prose = _LINK_TARGET.sub(" ", _CODE.sub(" ", text))
    japanese = len(_JAPANESE.findall(prose))
    words = _LATIN_WORD.findall(prose)
    letters = sum(len(w) for w in words)
    if japanese < 2 or not words:
        return False
    if len(words) >= 8:
        if not _ENGLISH_FUNCTION_WORDS & {w.lower() for w in words}:
            return False
        # Japanese packs about three Latin letters' worth of meaning into one character.
        if japanese < 0.12 * letters:
            return False
    if japanese >= 30 and letters < 0.8 * japanese:
        return False
    return True


def _nbs_by_kind(notebooks, kind):
    return [n for n in notebooks if n.path.parent.parent.name == kind]


def check_unique_grade_ids(notebooks: list[CourseNotebook]) -> list[str]:
    """Every ``grade_id`` appears once in the whole course."""
    seen = defaultdict(list)
    for nb in notebooks:
        for index, cell in enumerate(nb.nb.cells):
            gid = grade_id(cell)
            if gid is not None:
                seen[gid].append(f"{nb.label} cell {index}")
    return [f"grade_id '{gid}' is used {len(where)} times: {', '.join(where)}"
            for gid, where in sorted(seen.items()) if len(where) > 1]


def check_schema_version(notebooks: list[CourseNotebook]) -> list[str]:
    problems = []
    for nb in notebooks:
        for index, cell in enumerate(nb.nb.cells):
            meta = nbgrader_meta(cell)
            if meta and meta.get("schema_version") != SCHEMA_VERSION:
                problems.append(f"{nb.label} cell {index}: nbgrader schema_version "
                                f"{meta.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    return problems


def check_points_total(notebooks: list[CourseNotebook]) -> list[str]:
    """Each module's ``assignment.ipynb`` carries exactly 100 points; lessons carry none."""
    problems = []
    for nb in notebooks:
        points = sum(float(nbgrader_meta(c).get("points", 0) or 0) for c in nb.nb.cells
                     if nbgrader_meta(c).get("grade") or nbgrader_meta(c).get("task"))
        if nb.name == ASSIGNMENT and points != POINTS_PER_ASSIGNMENT:
            problems.append(f"{nb.label}: points sum to {points:g}, not {POINTS_PER_ASSIGNMENT}")
        if nb.name != ASSIGNMENT and points:
            problems.append(f"{nb.label}: {points:g} points outside assignment.ipynb")
    return problems


def _next_code_cell(cells, index):
    for later in range(index + 1, len(cells)):
        if cells[later].cell_type == "code":
            return later, cells[later]
    return None, None


def check_answers_followed_by_tests(notebooks: list[CourseNotebook]) -> list[str]:
    """The code cell after every autograded answer is a test cell."""
    problems = []
    for nb in notebooks:
        for index, cell in enumerate(nb.nb.cells):
            if cell.cell_type == "code" and is_autograded_answer(cell):
                _, following = _next_code_cell(nb.nb.cells, index)
                if following is None or not is_test_cell(following):
                    problems.append(f"{nb.label}: answer cell '{grade_id(cell)}' (cell {index}) "
                                    "is not followed by a test cell")
    return problems


def _bound_names(source: str) -> set[str]:
    """Names a cell binds in the notebook's namespace (not inside its functions)."""
    return (cell_names(source) or (set(), set()))[0]


def _read_by_tests(cells) -> set[str]:
    """Global names the test cells read."""
    return {name for cell in cells if cell.cell_type == "code" and is_test_cell(cell)
            for name in (cell_names(cell.source) or (set(), set()))[1]}


def check_setup_cells(notebooks: list[CourseNotebook]) -> list[str]:
    """In a graded notebook, every code cell that is neither an answer nor a test is a
    locked setup cell, and binds no name that an answer cell binds and a test reads.

    The grader runs setup cells in the trusted checker from the gradebook's copy (only locked
    cells have one), and may run them all before the student's first cell: a name both a
    setup cell and an answer bind would then be the instructor's in every test.
    """
    problems = []
    for nb in notebooks:
        cells = nb.nb.cells
        if not any(is_test_cell(c) for c in cells):
            continue
        answers: dict[str, str] = {}
        read = _read_by_tests(cells)
        for cell in cells:
            if cell.cell_type == "code" and (is_autograded_answer(cell) or is_manual_answer(cell)):
                for name in _bound_names(cell.source):
                    answers.setdefault(name, grade_id(cell) or "?")
        for index, cell in enumerate(cells):
            if cell.cell_type != "code" or is_autograded_answer(cell) or is_manual_answer(cell) \
                    or is_test_cell(cell):
                continue
            meta = nbgrader_meta(cell)
            if not (meta.get("locked") and grade_id(cell)):
                problems.append(f"{nb.label}: code cell {index} is neither an answer nor a test: make it "
                                "a locked nbgrader cell with a grade_id (a setup cell)")
                continue
            shared = sorted(_bound_names(cell.source) & set(answers) & read)
            if shared:
                problems.append(f"{nb.label}: setup cell '{grade_id(cell)}' binds "
                                + ", ".join(f"{n!r} (also bound by answer '{answers[n]}')" for n in shared))
    return problems


def check_answers_not_builtins(notebooks: list[CourseNotebook]) -> list[str]:
    """No answer binds a built-in name that a test reads: in the grader's checker a test's
    ``max`` is always the built-in, never the student's."""
    import builtins

    problems = []
    for nb in notebooks:
        cells = nb.nb.cells
        read = _read_by_tests(cells)
        for cell in cells:
            if cell.cell_type == "code" and is_autograded_answer(cell):
                clash = sorted(n for n in _bound_names(cell.source) & read if hasattr(builtins, n))
                if clash:
                    problems.append(f"{nb.label}: answer '{grade_id(cell)}' binds the built-in "
                                    f"name(s) {', '.join(clash)}, which a test reads: rename them")
    return problems


def check_tiers(notebooks: list[CourseNotebook]) -> list[str]:
    """Every graded cell is tagged ``core`` or ``extension``; an answer and its tests agree."""
    problems = []
    for nb in notebooks:
        cells = nb.nb.cells
        for index, cell in enumerate(cells):
            if not is_graded(cell):
                continue
            if tier(cell) is None:
                problems.append(f"{nb.label}: graded cell '{grade_id(cell)}' (cell {index}) "
                                "needs exactly one tag: core or extension")
                continue
            if cell.cell_type == "code" and is_autograded_answer(cell):
                _, test = _next_code_cell(cells, index)
                if test is not None and is_test_cell(test) and tier(test) != tier(cell):
                    problems.append(f"{nb.label}: answer '{grade_id(cell)}' is {tier(cell)} but "
                                    f"its test '{grade_id(test)}' is {tier(test)}")
    return problems


def check_no_outputs(notebooks: list[CourseNotebook]) -> list[str]:
    problems = []
    for nb in notebooks:
        for index, cell in enumerate(nb.nb.cells):
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
                problems.append(f"{nb.label} cell {index}: stored outputs or execution count "
                                "(clear them before committing)")
    return problems


def _solution_lines(source: str) -> list[str]:
    """Substantive lines inside solution and hidden-test regions of a source cell."""
    lines, inside = [], False
    for line in source.splitlines():
        if re.search(r"BEGIN (SOLUTION|HIDDEN TESTS)|=== BEGIN MARK SCHEME", line):
            inside = True
            continue
        if re.search(r"END (SOLUTION|HIDDEN TESTS)|=== END MARK SCHEME", line):
            inside = False
            continue
        stripped = line.strip()
        if inside and len(stripped) >= 12 and not stripped.startswith("#"):
            lines.append(stripped)
    return lines


def check_no_leaks(sources: list[CourseNotebook], releases: list[CourseNotebook]) -> list[str]:
    """Released notebooks hold no markers, no solution code, no hidden tests, no mark schemes.

    Beyond the nbgrader markers, every substantive line of a solution or hidden-test region
    of the source must be absent from the released cell with the same ``grade_id``.
    """
    problems = []
    for nb in releases:
        text = nb.path.read_text(encoding="utf-8")
        for marker in SOLUTION_MARKERS:
            if marker in text:
                problems.append(f"{nb.label} contains '{marker}'")
    by_key = {(n.module, n.name): n for n in releases}
    for source in sources:
        release = by_key.get((source.module, source.name))
        if release is None:
            continue
        released = {grade_id(c): c.source for c in release.nb.cells if grade_id(c)}
        for cell in source.nb.cells:
            gid = grade_id(cell)
            if gid is None or gid not in released:
                continue
            for line in _solution_lines(cell.source):
                if line in released[gid]:
                    problems.append(f"{release.label} cell '{gid}' leaks: {line[:60]}")
    return problems


def _string_parts(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " ".join(_string_parts(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _string_parts(node.left) + " " + _string_parts(node.right)
    if isinstance(node, ast.Call):  # "...".format(...)
        return _string_parts(node.func.value) if isinstance(node.func, ast.Attribute) else ""
    return ""


def _messages(source: str) -> list[tuple[int, str | None]]:
    """(line, message) of every assert and raise in code; message None when absent.

    A bare ``raise`` (re-raising in an ``except``) is not counted; ``raise Error`` and
    ``raise Error()`` have no message.
    """
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            found.append((node.lineno, _string_parts(node.msg) if node.msg else None))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            if isinstance(node.exc, ast.Call) and node.exc.args:
                found.append((node.lineno, _string_parts(node.exc.args[0])))
            else:
                found.append((node.lineno, None))
    return found


_HIDDEN_BEGIN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS")
_HIDDEN_END = re.compile(r"^[ \t]*### END HIDDEN TESTS")
HIDDEN_MESSAGE_PROBLEM = ("hidden assert without a bilingual message (teach what was expected, "
                          "EN and JA, without the answer)")


def _hidden_lines(source: str) -> set[int]:
    """1-based numbers of the lines inside the hidden-test regions of a test cell."""
    hidden, inside = set(), False
    for number, line in enumerate(source.splitlines(), 1):
        if _HIDDEN_BEGIN.match(line):
            inside = True
        elif _HIDDEN_END.match(line):
            inside = False
        elif inside:
            hidden.add(number)
    return hidden


def _is_bilingual_message(message: str | None) -> bool:
    return bool(message) and bool(_JAPANESE.search(message)) and len(_LATIN_WORD.findall(message)) >= 3


def check_bilingual_test_messages(notebooks: list[CourseNotebook]) -> list[str]:
    """Every assert and raise in a test cell, hidden regions included, has a message in
    English and Japanese."""
    problems = []
    for nb in notebooks:
        for cell in nb.nb.cells:
            if not is_test_cell(cell):
                continue
            try:
                messages = _messages(without_magics(cell.source))
            except SyntaxError as err:
                problems.append(f"{nb.label} test '{grade_id(cell)}' does not parse: {err}")
                continue
            hidden = _hidden_lines(cell.source)
            for line, message in sorted(messages, key=lambda m: m[0]):
                if _is_bilingual_message(message):
                    continue
                where = f"{nb.label} test '{grade_id(cell)}' line {line}"
                if line in hidden:
                    shown = f": {message[:60]!r}" if message else ""
                    problems.append(f"{where}: {HIDDEN_MESSAGE_PROBLEM}{shown}")
                elif message is None:
                    problems.append(f"{where}: assert without a message (say what to check, in EN and JA)")
                else:
                    problems.append(f"{where}: message is not in English and Japanese: {message[:60]!r}")
    return problems


def check_bilingual_markdown(notebooks: list[CourseNotebook]) -> list[str]:
    problems = []
    for nb in notebooks:
        for index, cell in enumerate(nb.nb.cells):
            if cell.cell_type == "markdown" and cell.source.strip() and not is_bilingual(cell.source):
                first = cell.source.strip().splitlines()[0][:60]
                problems.append(f"{nb.label} markdown cell {index} is not in both English and "
                                f"Japanese: {first!r}")
    return problems


# --- how markdown renders Japanese ------------------------------------------------------

# CJK letters, CJK punctuation (、。「」・ー) and full-width forms (（）／：).
_CJK = "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
_QUOTE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_ORDERED_ITEM = re.compile(r"^( {0,3})(\d{1,9})[.)]([ \t]+|$)")
_HEADING_LINE = re.compile(r"^ {0,3}#{1,6}([ \t]|$)")
_BULLET_ITEM = re.compile(r"^ {0,3}[-*+]([ \t]+|$)")
_INTERRUPTS = re.compile(r"^ {0,3}(#{1,6}([ \t]|$)|```|~~~|<|>|\||([-*_])([ \t]*\3){2,}[ \t]*$)")


def _markdown_lines(text: str):
    """(index, line, in_code) of every line; fenced code blocks are code."""
    fence = None
    for index, line in enumerate(text.split("\n")):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            yield index, line, True
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            yield index, line, True
            continue
        yield index, line, False


def _edge_char(text: str, end: bool) -> str:
    """The last (``end``) or first character of ``text`` around emphasis markers."""
    text = text.rstrip(" *_") if end else text.lstrip(" \t*_")
    return (text[-1] if end else text[0]) if text else ""


def japanese_line_breaks(text: str) -> list[int]:
    """0-based numbers of the lines of markdown ``text`` that end between two CJK characters
    (or a CJK character and CJK punctuation) with the next line: the browser shows that line
    break as a space inside a Japanese sentence. Code blocks and hard breaks (two trailing
    spaces or a backslash) are left alone."""
    lines = list(_markdown_lines(text))
    found = []
    for (index, line, code), (_, following, next_code) in zip(lines, lines[1:], strict=False):
        if code or next_code or not following.strip() or line.endswith(("  ", "\\")) \
                or _HEADING_LINE.match(line):
            continue
        rest = _QUOTE_PREFIX.sub("", following) if _QUOTE_PREFIX.match(line) else following
        last, first = _edge_char(line, True), _edge_char(rest, False)
        if _CJK_CHAR.fullmatch(last or "a") and _CJK_CHAR.fullmatch(first or "a"):
            found.append(index)
    return found


def join_japanese_lines(text: str) -> str:
    """``text`` with every line break that :func:`japanese_line_breaks` finds removed (the
    next line's indentation and blockquote marker go too); lists, paragraphs, code and
    everything else stay as they are."""
    lines = text.split("\n")
    for index in reversed(japanese_line_breaks(text)):
        following = lines[index + 1]
        rest = _QUOTE_PREFIX.sub("", following) if _QUOTE_PREFIX.match(lines[index]) else following
        lines[index:index + 2] = [lines[index].rstrip() + rest.lstrip()]
    return "\n".join(lines)


def _language(text: str) -> str | None:
    prose = _LINK_TARGET.sub(" ", _CODE.sub(" ", text))
    japanese = len(_JAPANESE.findall(prose))
    letters = sum(len(w) for w in _LATIN_WORD.findall(prose))
    if japanese >= 2 and japanese * 3 >= letters:
        return "ja"
    if letters >= 3 and japanese * 3 < 0.25 * letters:
        return "en"
    return None


def _ordered_lists(text: str) -> list[list[tuple[int, int, str]]]:
    """The top-level ordered lists of markdown ``text`` as CommonMark groups them, each a
    list of (line index, number written, item text). Items separated only by blank lines
    and indented continuation lines are one list, whatever numbers they carry."""
    lists, current, blank, paragraph = [], None, False, False
    for index, line, code in _markdown_lines(text):
        item = None if code else _ORDERED_ITEM.match(line)
        if item and current is None and paragraph and item.group(2) != "1":
            item = None  # only "1." interrupts a paragraph: "... and Midorino\n54400034. Now" is prose
        if item:
            if current is None:
                current = []
                lists.append(current)
            current.append((index, int(item.group(2)), line[item.end():]))
            blank = False
        elif current is not None and not line.strip():
            blank = True
        elif current is not None and not code and line[:1] in (" ", "\t") and line.strip():
            if blank and len(line) - len(line.lstrip()) < 2:
                current = None
            else:
                where, number, body = current[-1]
                current[-1] = (where, number, body + "\n" + line.strip())
                blank = False
        elif current is not None and not blank and not code and not _INTERRUPTS.match(line) \
                and not _BULLET_ITEM.match(line):
            where, number, body = current[-1]  # a lazy continuation line
            current[-1] = (where, number, body + "\n" + line.strip())
        else:
            current, blank = None, False
        paragraph = current is None and not code and bool(line.strip())
    return lists


def check_list_numbering(notebooks: list[CourseNotebook]) -> list[str]:
    """No ordered list runs on from English items into Japanese ones: Markdown merges an
    English list 1-5 and the Japanese list 1-5 right after it into one list, and the Japanese
    steps are shown as 6-10. Put a line between them (``<!-- 日本語 / Japanese -->``)."""
    problems = []
    for nb in notebooks:
        for index, cell in enumerate(nb.nb.cells):
            if cell.cell_type != "markdown":
                continue
            for items in _ordered_lists(cell.source):
                for position in range(1, len(items)):
                    (_, before, text_before), (line, after, text_after) = items[position - 1:position + 1]
                    if after <= before and _language(text_before) == "en" and _language(text_after) == "ja":
                        problems.append(
                            f"{nb.label} markdown cell {index} line {line + 1}: the Japanese list starting "
                            f"'{after}. {text_after.splitlines()[0][:30]}' runs on from the English one and "
                            f"is numbered {position + 1}, not "
                            f"{after}: put a line such as <!-- 日本語 / Japanese --> between the lists / "
                            "英語のリストのすぐ後の日本語のリストは続き番号になります。"
                            "間に <!-- 日本語 / Japanese --> のような行を入れてください")
    return problems


def check_japanese_line_breaks(notebooks: list[CourseNotebook], readmes: list[Path] = ()) -> list[str]:
    """No line break of a markdown cell or module README falls between two Japanese
    characters: the browser renders it as a space inside the sentence."""
    sources = [(f"{nb.label} markdown cell {index}", cell.source)
               for nb in notebooks for index, cell in enumerate(nb.nb.cells) if cell.cell_type == "markdown"]
    sources += [("/".join(Path(path).parts[-3:]), Path(path).read_text(encoding="utf-8")) for path in readmes]
    problems = []
    for where, text in sources:
        lines = text.split("\n")
        for index in japanese_line_breaks(text):
            problems.append(
                f"{where} line {index + 1}: a line break inside a Japanese sentence shows as a space "
                f"({lines[index].strip()[-12:]!r} / {lines[index + 1].strip()[:12]!r}): join the lines / "
                "日本語の文の途中の改行は空白として表示されます。行をつなげてください")
    return problems


# --- glossary -------------------------------------------------------------------------------

GLOSSARY = Path("course") / "GLOSSARY.md"
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_BACKTICKED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class GlossaryEntry:
    """One row of ``course/GLOSSARY.md``: the term to use and the patterns to avoid."""

    english: str
    japanese: str
    avoid: tuple[re.Pattern, ...]
    note: str = ""

    def suggestion(self) -> str:
        note = f"; {self.note}" if self.note else ""
        return f"use {self.japanese} ({self.english}{note})"


def _table_cells(line: str) -> list[str]:
    """The cells of a markdown table row; ``\\|`` inside a cell is a literal pipe."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(inner)]


def load_glossary(path: Path) -> list[GlossaryEntry]:
    """The rows of the glossary's tables (English | 日本語 | Avoid | Note).

    Column 3 holds Python regular expressions in backticks; a row may have none. Raises
    ``ValueError`` naming the line when a row is malformed or a pattern does not compile.
    """
    entries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.lstrip().startswith("|"):
            continue
        cells = _table_cells(line)
        if all(set(c) <= set("-: ") for c in cells):  # the |---|---| rule
            continue
        if len(cells) != 4:
            raise ValueError(f"{path} line {number}: {len(cells)} columns, expected 4 "
                             "(English | 日本語 | Avoid | Note)")
        english, japanese, avoid, note = cells
        if english == "English":  # a header row
            continue
        patterns = []
        for pattern in _BACKTICKED.findall(avoid):
            try:
                patterns.append(re.compile(pattern))
            except re.error as err:
                raise ValueError(f"{path} line {number}: pattern {pattern!r} does not compile: "
                                 f"{err}") from err
        if _BACKTICKED.sub("", avoid).strip(" ,"):
            raise ValueError(f"{path} line {number}: the Avoid column holds text outside "
                             f"backticks: {avoid!r}")
        entries.append(GlossaryEntry(english, japanese, tuple(patterns), note))
    if not entries:
        raise ValueError(f"{path}: no glossary table found")
    return entries


def _code_text(source: str) -> list[tuple[int, str]]:
    """(line, text) of the strings and comments of a code cell (the whole source when it
    does not tokenize)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(without_magics(source)).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return list(enumerate(source.splitlines(), 1))
    return [(tok.start[0], tok.string) for tok in tokens if tok.type in (tokenize.STRING, tokenize.COMMENT)]


def _glossary_hits(entries, pieces, where) -> list[str]:
    problems = []
    for line, text in pieces:
        for entry in entries:
            for pattern in entry.avoid:
                for match in pattern.finditer(text):
                    found = match.group(0)
                    line_no = line + text.count("\n", 0, match.start())
                    problems.append(f"{where} line {line_no}: {found!r} -> {entry.suggestion()}")
    return problems


def check_glossary(notebooks: list[CourseNotebook], readmes: list[Path] = (),
                   glossary: list[GlossaryEntry] | None = None, root: Path | None = None) -> list[str]:
    """No markdown cell, code string or comment of a notebook, and no module README, uses a
    pattern the glossary says to avoid; each problem names the term to use instead."""
    if glossary is None:
        glossary = load_glossary(Path(root or ".") / GLOSSARY)
    problems = []
    for nb in notebooks:
        for index, cell in enumerate(nb.nb.cells):
            if cell.cell_type == "markdown":
                pieces = [(1, cell.source)]
            elif cell.cell_type == "code":
                pieces = _code_text(cell.source)
            else:
                continue
            problems += _glossary_hits(glossary, pieces, f"{nb.label} cell {index}")
    for path in readmes:
        path = Path(path)
        label = "/".join(path.parts[-3:])
        problems += _glossary_hits(glossary, [(1, path.read_text(encoding="utf-8"))], label)
    return problems


RECURRENT_PATH = "リカレント履修の道筋"
RECURRENT_PATH_WITHIN = 3


def check_recurrent_path_box(notebooks: list[CourseNotebook]) -> list[str]:
    """Every ``lesson.ipynb`` has, within its first three cells, a markdown cell with the
    リカレント履修の道筋 / Recurrent path box."""
    problems = []
    for nb in notebooks:
        if nb.name != "lesson":
            continue
        head = nb.nb.cells[:RECURRENT_PATH_WITHIN]
        if not any(c.cell_type == "markdown" and RECURRENT_PATH in c.source for c in head):
            problems.append(f"{nb.label}: no '{RECURRENT_PATH} / Recurrent path' box in the first "
                            f"{RECURRENT_PATH_WITHIN} cells (a markdown cell right after the title, "
                            "Japanese first)")
    return problems


# Calls that draw a figure in the course's notebooks.
_PLOTTING = re.compile(
    r"\bplt\.(plot|bar|barh|hist|scatter|imshow|subplots|figure|show)\b|\.plot\(|\.plot\.\w+\("
    r"|\.(bar|barh|hist|scatter|imshow|pie|boxplot|violinplot)\(|\.explore\("
)


def check_figures_described(notebooks: list[CourseNotebook]) -> list[str]:
    """A cell that draws a figure is followed by a markdown cell describing it (Figure/図)."""
    problems = []
    for nb in notebooks:
        cells = nb.nb.cells
        for index, cell in enumerate(cells):
            if cell.cell_type != "code" or not _PLOTTING.search(cell.source):
                continue
            if is_autograded_answer(cell) or is_manual_answer(cell) or is_test_cell(cell):
                continue  # the learner draws; the statement describes what to draw
            following = cells[index + 1] if index + 1 < len(cells) else None
            if (following is None or following.cell_type != "markdown"
                    or not re.search(r"\bFigure\b", following.source) or "図" not in following.source):
                problems.append(f"{nb.label} cell {index} draws a figure but the next cell does "
                                "not describe it ('**Figure.** …' and '**図.** …')")
    return problems


_LABEL_CALLS = {"set_title", "set_xlabel", "set_ylabel", "suptitle", "title", "xlabel", "ylabel", "set_label"}
_LABEL_KEYWORDS = {"label", "title", "xlabel", "ylabel"}


def _literal_text(node) -> str | None:
    """The literal parts of a string expression (an f-string's fields left out)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " ".join(v.value for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp):
        parts = [_literal_text(node.left), _literal_text(node.right)]
        return " ".join(p for p in parts if p) or None
    return None


def _code_cell_trees(nb: CourseNotebook, containing: str = ""):
    """``(index, ast tree)`` of each code cell that parses (and holds ``containing``)."""
    for index, cell in enumerate(nb.nb.cells):
        if cell.cell_type != "code" or containing not in cell.source:
            continue
        try:
            yield index, ast.parse(without_magics(cell.source))
        except SyntaxError:
            continue


def check_bilingual_figure_labels(notebooks: list[CourseNotebook]) -> list[str]:
    """Titles, axis labels and legend labels written in a notebook are in English and
    Japanese: a literal with two or more English words and no Japanese is flagged (a name
    such as "pybullet", units and symbols pass)."""
    problems = []
    for nb in notebooks:
        for index, tree in _code_cell_trees(nb):
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                values = node.args[:1] if node.func.attr in _LABEL_CALLS else []
                values += [k.value for k in node.keywords if k.arg in _LABEL_KEYWORDS]
                for value in values:
                    text = _literal_text(value)
                    if text and len(re.findall(r"[A-Za-z]{3,}", text)) >= 2 and not _JAPANESE.search(text):
                        problems.append(f"{nb.label} cell {index} line {node.lineno}: figure text "
                                        f"{text[:50]!r} is only in English: add the Japanese "
                                        "('English / 日本語') / 図の文字が英語だけです。"
                                        "日本語も添えてください")
    return problems


SMALLEST_LEGEND_PT = 9
_SMALL_SIZES = {"xx-small", "x-small", "small"}
_LEGEND_ADVICE = (f"use {SMALLEST_LEGEND_PT} pt or more, or leave it out (11 pt), and put a crowded "
                  "legend outside the axes / 凡例の文字が小さすぎて読めません。"
                  f"{SMALLEST_LEGEND_PT} pt 以上にするか指定を外し（11 pt）、"
                  "多い凡例は軸の外に置いてください")


def check_legend_sizes(notebooks: list[CourseNotebook]) -> list[str]:
    """No legend in a notebook is set below 9 pt (the course style's legends are 11 pt):
    a 7-pt legend in a figure scaled to the width of a notebook cannot be read."""
    problems = []
    for nb in notebooks:
        for index, tree in _code_cell_trees(nb, containing="legend"):
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "legend"):
                    continue
                for keyword in node.keywords:
                    value = keyword.value.value if isinstance(keyword.value, ast.Constant) else None
                    if keyword.arg in ("fontsize", "title_fontsize") and (
                            (isinstance(value, int | float) and value < SMALLEST_LEGEND_PT)
                            or value in _SMALL_SIZES):
                        problems.append(f"{nb.label} cell {index} line {node.lineno}: legend "
                                        f"{keyword.arg}={value!r} is too small: {_LEGEND_ADVICE}")
    return problems


def check_known_wrong_coverage(root: Path, sources: list[CourseNotebook]) -> list[str]:
    """Every autograded answer has a known-wrong answer naming a real test cell."""
    problems = []
    by_module = defaultdict(list)
    for nb in sources:
        by_module[nb.module].append(nb)
    for module, nbs in sorted(by_module.items()):
        try:
            wrongs = load_known_wrong(Path(root) / "solutions" / module)
        except ValueError as err:
            problems.append(str(err))
            continue
        covered = Counter((w.notebook, w.answer) for w in wrongs)
        cells = {nb.name: {grade_id(c): c for c in nb.nb.cells if grade_id(c)} for nb in nbs}
        for nb in nbs:
            for cell in nb.nb.cells:
                if cell.cell_type == "code" and is_autograded_answer(cell):
                    if not covered[(nb.name, grade_id(cell))]:
                        problems.append(f"{nb.label}: answer '{grade_id(cell)}' has no known-wrong "
                                        "answer in known-wrong.toml")
        for number, wrong in enumerate(wrongs, 1):
            named = cells.get(wrong.notebook, {})
            where = f"solutions/{module}/known-wrong.toml entry {number}"
            if wrong.notebook not in cells:
                problems.append(f"{where}: no notebook {wrong.notebook}.ipynb")
            elif wrong.answer not in named or not is_autograded_answer(named[wrong.answer]):
                problems.append(f"{where}: '{wrong.answer}' is not an autograded answer cell")
            elif wrong.must_fail not in named or not is_test_cell(named[wrong.must_fail]):
                problems.append(f"{where}: '{wrong.must_fail}' is not a test cell")
    return problems


def check_ruff(root: Path) -> list[str]:
    """``ruff check`` of the source notebooks and the package, with the repository's settings."""
    targets = [p for p in ("solutions", "course", "tests") if (Path(root) / p).exists()]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", *targets],
                          cwd=root, capture_output=True, text=True)
    if done.returncode == 0:
        return []
    return [line for line in done.stdout.splitlines() if line.strip()] or [done.stderr.strip()]


def module_readmes(root: Path, modules=None) -> list[Path]:
    """``solutions/<module>/README.md`` of the given modules (default: every module)."""
    from .notebooks import module_ids

    return [path for module in modules or module_ids(root, "solutions")
            if (path := Path(root) / "solutions" / module / "README.md").is_file()]


def run_lint(root: Path, modules=None) -> dict[str, list[str]]:
    """Every rule over the course: ``{rule name: problems}``."""
    from .notebooks import iter_notebooks

    sources = list(iter_notebooks(root, "solutions", modules))
    releases = list(iter_notebooks(root, "modules", modules))
    both = sources + releases
    return {
        "unique grade_ids": check_unique_grade_ids(sources),
        "schema version": check_schema_version(both),
        "100 points per assignment": check_points_total(sources),
        "answers followed by tests": check_answers_followed_by_tests(sources),
        "setup cells locked, apart from answers": check_setup_cells(sources),
        "answers bind no built-in a test reads": check_answers_not_builtins(sources),
        "core/extension tiers": check_tiers(sources),
        "no stored outputs": check_no_outputs(both),
        "no leaks in modules/": check_no_leaks(sources, releases),
        "bilingual markdown": check_bilingual_markdown(releases),
        "bilingual test messages, hidden included": check_bilingual_test_messages(sources),
        "glossary terms": check_glossary(sources, module_readmes(root, modules), root=root),
        "recurrent path box in every lesson": check_recurrent_path_box(sources),
        "figures described": check_figures_described(sources),
        "Japanese lists numbered from 1": check_list_numbering(sources),
        "legends readable (9 pt or more)": check_legend_sizes(sources),
        "figure labels in English and Japanese": check_bilingual_figure_labels(sources),
        "no line break inside a Japanese sentence":
            check_japanese_line_breaks(sources, module_readmes(root, modules)),
        "known-wrong answers": check_known_wrong_coverage(root, sources),
        "ruff": check_ruff(root),
    }
