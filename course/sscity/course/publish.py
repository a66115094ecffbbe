"""The student edition: ``sscity course publish [--japanese-first] DEST``.

Copies the repository's tracked files into ``DEST`` without what students must not see --
``solutions/`` (solutions, hidden tests, mark schemes), ``known-wrong.toml`` files, and the
instructor-only tests and benchmarks -- then runs the edition's own smoke test
(``tests/test_published.py``) inside it with its own copy of ``sscity`` and datasets. The
edition's README gives the students' two commands (``make setup``, ``make lab``), which the
smoke test runs from a fresh ``git clone``; the ``.sscity-edition`` file marks its root, where
``sscity lab`` works without ``solutions/`` and instructors' commands refuse to run.
``--japanese-first`` writes the same edition with the Japanese paragraph first in every
bilingual markdown cell, test message and module README.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

__all__ = [
    "EDITION_MARKER",
    "STUDENT_TESTS",
    "edition_readme",
    "first_language",
    "japanese_first_code",
    "japanese_first_markdown",
    "japanese_first_notebook",
    "language",
    "make_japanese_first",
    "message_halves",
    "publish",
    "readme_commands",
    "smoke_test",
]

# Tests that need no solutions: they travel with the student edition.
STUDENT_TESTS = ("conftest.py", "test_data.py", "test_datasets.py", "test_survey.py", "test_plotting.py")
_EXCLUDED_TOP = {"solutions", "benchmarks", ".ci", ".git"}
_EXCLUDED_NAMES = {"known-wrong.toml", "AUTHORING.md"}


def _tracked_files(root: Path) -> list[Path]:
    try:
        done = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
        return [root / name for name in done.stdout.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in root.rglob("*") if p.is_file() and ".venv" not in p.parts]


def publish(root: Path, dest: Path, japanese_first: bool = False) -> list[Path]:
    """Write the student edition of the course at ``root`` into ``dest`` (which must not exist).

    With ``japanese_first``, the modules' notebooks and READMEs put the Japanese first (see
    :func:`make_japanese_first`): the recurrent track's edition."""
    root, dest = Path(root).resolve(), Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: choose a new folder for the student edition.")
    if root in dest.parents:
        raise ValueError("Publish outside the course repository, e.g. ../sscity-student.")
    written = []
    for path in _tracked_files(root):
        relative = path.relative_to(root)
        if relative.parts[0] in _EXCLUDED_TOP or path.name in _EXCLUDED_NAMES or not path.is_file():
            continue
        if relative.parts[0] == "tests" and path.name not in STUDENT_TESTS:
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        written.append(target)
    # The demo grades a class against the solutions, which this edition does not have.
    makefile = dest / "Makefile"
    if makefile.is_file():
        text = makefile.read_text()
        # The whole recipe of `demo:`, up to the next blank line.
        text = re.sub(r"(?m)^demo: setup\n(?:.+\n)*",
                      "demo: setup\n\t$(SSCITY) data verify\n"
                      "\t@echo 'Student edition: open the course with make lab.'\n", text)
        # The help at its top lists what students run.
        head, sep, tail = text.partition("# With no environment active")
        if sep:
            text = EDITION_MAKE_HELP + sep + tail
        makefile.write_text(text)
    # The edition's root marker: `sscity lab` (so `make lab`) finds the course by it, since
    # the edition has no solutions/ (instructors' commands refuse to run here).
    (dest / EDITION_MARKER).write_text(
        "sscity student edition: made by `sscity course publish`; no solutions/. Keep this "
        "file: `make lab` finds the course by it.\n学生版の目印です。`make lab` が使うので"
        "消さないでください。\n", encoding="utf-8")
    readme = dest / "README.md"
    if readme.is_file():
        readme.write_text(edition_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")
    smoke = root / "tests" / "published" / "test_published.py"
    shutil.copy2(smoke, dest / "tests" / "test_published.py")
    (dest / ".ci").mkdir(exist_ok=True)
    (dest / ".ci" / "run").write_text("#!/usr/bin/env bash\nset -euo pipefail\ncd \"$(dirname \"$0\")/..\"\n"
                                      "make test\n")
    note = ""
    if japanese_first:
        make_japanese_first(dest)
        note = ("\n日本語を先に置いた版です（`--japanese-first`）：各セル・テストのメッセージ・モジュールの "
                "README で、日本語の段落が英語の前にあります。\nThe Japanese-first edition "
                "(`--japanese-first`): in every cell, test message and module README the Japanese "
                "comes before the English.\n")
    (dest / "PUBLISHED.md").write_text(
        "# Student edition / 学生版\n\nMade by `sscity course publish`: the released notebooks, the "
        "helper package and the datasets, without solutions, hidden tests or known-wrong answers.\n"
        "解答・非公開テスト・誤答例を含まない、配布用の版です。\n" + note, encoding="utf-8")
    return written


EDITION_MARKER = ".sscity-edition"

EDITION_MAKE_HELP = """\
# Tsukuba Super Science City course -- the student edition (made by `sscity course publish`).
#
#   make setup      install the course (once); make lab does it too when needed
#   make lab        JupyterLab on modules/ -- open 00-orientation/lesson.ipynb first;
#                   PORT=8888 LAB_ARGS="--no-browser" on a remote or headless machine
#   make test       check this copy: no solutions, datasets intact, every notebook runs
#   make demo       check the datasets (grading needs the instructor repository)
#
"""

# The student edition's two commands: the first ```bash block of its README (the smoke test
# runs them from a fresh clone).
EDITION_COMMANDS = """\
## Two commands / 二つのコマンド

This is the **student edition** of the course, made by `sscity course publish`: the lessons,
the assignments, the `sscity` helper package and the datasets -- without solutions, hidden
tests or known-wrong answers. On a machine with **Python 3.11 or newer**, `git` and `make`:
これはコースの**学生版**です（解答・非公開テスト・誤答例は含みません）。Python 3.11 以上、
`git`、`make` があれば、次の二つのコマンドで始められます。

```bash
make setup   # once: create .venv/ here and install the course into it
make lab     # JupyterLab on modules/ — open 00-orientation/lesson.ipynb first
```

With a virtualenv or a conda environment (other than `base`) active, both use it and create
no `.venv/`. Nothing is downloaded at run time: every dataset is in `datasets/`. Hand in your
notebooks the way your instructor tells you (the assignment list of JupyterLab is only used on
a class JupyterHub). / 仮想環境（または base 以外の conda 環境）が有効なら、それを使い `.venv/`
は作りません。データはすべて `datasets/` にあり、実行中に何もダウンロードしません。提出方法は
担当教員の指示に従ってください。

On a remote or headless machine / リモートや画面のないマシンでは:

```bash
make lab PORT=8888 LAB_ARGS="--no-browser"                 # then, from your own computer:
ssh -L 8888:localhost:8888 you@server                       # open the URL with ?token=... it prints
make lab PORT=8888 LAB_ARGS="--ip 0.0.0.0 --no-browser"    # or listen on the network (trusted networks only)
```

`sscity lab --port 8888 --ip 0.0.0.0 --no-browser --token SECRET` does the same without make.
JupyterLab prints a URL with a token; open that URL (or the forwarded one) in a browser. /
`make lab` はトークン付きの URL を表示します。手元のブラウザでその URL（ssh でポートを
転送した場合は http://localhost:8888/lab?token=...）を開きます。

### The conda route / conda を使う場合

```bash
conda env create -f environment.yml
conda activate sscity
make lab         # uses the active environment, creates no .venv
```

"""


def edition_readme(text: str) -> str:
    """The course README with its "Two commands" section (the instructors' commands: demo,
    test, verify) replaced by the student edition's own: ``make setup`` and ``make lab``."""
    start = text.find("## Two commands")
    end = text.find("\n## ", start + 1) if start >= 0 else -1
    if start < 0 or end < 0:  # no such section: the edition's commands go first
        title, _, rest = text.partition("\n")
        return f"{title}\n\n{EDITION_COMMANDS}{rest}"
    return text[:start] + EDITION_COMMANDS + text[end + 1:]


def readme_commands(text: str) -> list[str]:
    """The commands of the first ```bash block of the "Two commands" section of a README."""
    section = text[text.find("## Two commands"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    if not block:
        return []
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()
            if line.split("#", 1)[0].strip()]


def smoke_test(dest: Path) -> subprocess.CompletedProcess:
    """Run the edition's tests with its own package and datasets (not the course's)."""
    dest = Path(dest).resolve()
    env = dict(os.environ, PYTHONPATH=str(dest / "course"), SSCITY_DATASETS=str(dest / "datasets"))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-n", "2", str(dest / "tests")], cwd=dest, env=env,
                          capture_output=True, text=True)


# --- the Japanese-first edition -------------------------------------------------------------
#
# The course writes English first: a markdown cell holds English paragraph(s), then the
# Japanese ones; headings and short lines read "English / 日本語"; test messages read
# "English sentence. / 日本語の文。". The Japanese-first edition puts the Japanese first,
# moving whole paragraphs (list items, lines, halves of a " / " pair) and never rewording.

_JA_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# Spans that carry no language of their own, or that must not be cut: code, maths, links,
# URLs, HTML tags, emphasis, parentheses.
_PROTECTED = re.compile(
    r"```.*?```|`[^`]+`|\$\$.*?\$\$|\$[^$\n]+\$|!?\[[^\]\n]*\]\([^)\n]*\)|https?://\S+|<[^>\n]+>"
    r"|\*\*[^*\n]+?\*\*|(?<![*\w])\*[^*\n]+?\*(?![*\w])|\([^()\n]*\)|（[^（）\n]*）|「[^「」]*」"
    r'|"[^"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]{0,300}[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff][^"]{0,300}"',
    re.S)
# Quoted Japanese (「…」, or "…" holding Japanese) in English prose is a citation, not a
# translation: it has no language.
_NEUTRAL_SPAN = re.compile(
    r"```.*?```|`[^`]+`|\$\$.*?\$\$|\$[^$\n]+\$|\]\([^)\n]*\)|https?://\S+|<[^>\n]+>|「[^「」]*」"
    r'|"[^"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]{0,300}[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff][^"]{0,300}"',
    re.S)
# Where a text may be cut: line breaks, the " / " of a pair, the spaces after a sentence.
_BOUNDARY = re.compile(r"\n|[ \t]+/[ \t]+|(?<=[.!?:;)）。！？])[ \t]+")
_ITEM = re.compile(r"^([ \t]*)([-*+]|\d+[.)])([ \t]+)")
# A heading's level, and the number or sign that stays in front ("## 2. ", "# 00 — ", "## ⚠ ").
_HEADING = re.compile(r"^(#{1,6}[ \t]+)((?:\d+(?:\.\d+)*\.?(?:[ \t]+—)?[ \t]+|[^\w\s*`\[(（]+[ \t]+)?)(.*)$")


def language(text: str) -> str | None:
    """``"en"``, ``"ja"``, ``"mixed"`` or None (no prose: code, maths, numbers, markup).

    Japanese packs about three Latin letters' worth of meaning into one character: text is
    English when its Japanese part weighs under a fifth of its English part, Japanese when
    its Latin letters (names, units) weigh no more than its Japanese.
    """
    prose = _NEUTRAL_SPAN.sub(" ", text)
    japanese = len(_JA_CHAR.findall(prose))
    words = _LATIN_WORD.findall(prose)
    letters = sum(len(w) for w in words)
    if not japanese and not words:
        return None
    if words and 3 * japanese <= 0.25 * letters:
        return "en"
    if japanese and letters <= 3 * japanese:
        return "ja"
    return "mixed"


def _segments(text: str) -> tuple[list[str], list[str]]:
    """``text`` cut at its boundaries outside protected spans: (pieces, separators)."""
    protected = [m.span() for m in _PROTECTED.finditer(text)]

    def inside(pos):
        return any(a < pos < b for a, b in protected)

    pieces, seps, start = [], [], 0
    for match in _BOUNDARY.finditer(text):
        if match.start() == start or inside(match.start()) or inside(match.end() - 1):
            continue
        pieces.append(text[start:match.start()])
        seps.append(match.group(0))
        start = match.end()
    pieces.append(text[start:])
    return pieces, seps


def _swap_runs(pieces: list[str], seps: list[str], langs: list[str | None], keep_middle=False) -> str:
    """Join ``pieces`` with ``seps``, every English run that is followed by a Japanese run
    (neutral pieces may sit inside or between them) swapped with it. Neutral pieces between
    the two runs go with the English (the end of its sentence), or, with ``keep_middle``
    (whole blocks: a formula, a code block), stay between them."""
    n = len(pieces)

    def span(a, b):
        return "".join(pieces[k] + (seps[k] if k < b else "") for k in range(a, b + 1))

    out, i = [], 0
    while i < n:
        if langs[i] != "en":
            out.append(pieces[i] + (seps[i] if i < n - 1 else ""))
            i += 1
            continue
        end_en = i
        j = i
        while j + 1 < n and langs[j + 1] in ("en", None):
            j += 1
            if langs[j] == "en":
                end_en = j
        m = end_en + 1
        while m < n and langs[m] is None:
            m += 1
        if m >= n or langs[m] != "ja":
            out.append(span(i, end_en) + (seps[end_en] if end_en < n - 1 else ""))
            i = end_en + 1
            continue
        if not keep_middle:
            end_en = m - 1
        end_ja = k = m
        while k + 1 < n and langs[k + 1] in ("ja", None):
            k += 1
            if langs[k] == "ja":
                end_ja = k
        english, japanese = span(i, end_en), span(m, end_ja)
        if m > end_en + 1:  # neutral pieces (a formula, a code block) stay in the middle
            swapped = japanese + seps[m - 1] + span(end_en + 1, m - 1) + seps[end_en] + english
        else:
            swapped = japanese + seps[end_en] + english
        out.append(swapped + (seps[end_ja] if end_ja < n - 1 else ""))
        i = end_ja + 1
    return "".join(out)


def _leaning(text: str) -> str | None:
    """The language a short piece (a line, a sentence, half of a pair) leans to; a tie goes
    to Japanese (a Japanese title holding a Latin name: "Society 5.0 と都市OS")."""
    prose = _NEUTRAL_SPAN.sub(" ", text)
    if not _JA_CHAR.search(prose) and not _LATIN_WORD.search(prose):
        return None
    return "en" if _weight(text) > 0 else "ja"


def _japanese_first_text(text: str) -> str:
    """One paragraph, list item or heading text: its English and Japanese pieces swapped."""
    pieces, seps = _segments(text)
    return _swap_runs(pieces, seps, [_leaning(p) for p in pieces])


def _unit_language(text: str) -> str | None:
    """A paragraph's or list item's language: ``"mixed"`` when it holds English lines or
    sentences followed by Japanese ones, each part at least a fifth of it and more than a few
    words, or an explicit "English / 日本語" pair (to be swapped inside); else its language as
    a whole, ``"other"`` when that is unclear. A Japanese word in English prose does not
    make it mixed, and text that goes back and forth between the languages (a reference with
    Japanese titles) is never cut."""
    pieces, seps = _segments(text)
    leanings = [lang for lang in map(_leaning, pieces) if lang]
    switches = sum(a != b for a, b in zip(leanings, leanings[1:], strict=False))
    if leanings and leanings[0] == "en" and switches == 1:  # English, then Japanese
        if any(sep.strip() == "/" and _leaning(pieces[k]) == "en" and _leaning(pieces[k + 1]) == "ja"
               for k, sep in enumerate(seps)):
            return "mixed"  # an explicit "English / 日本語" pair, however short
        weights = [_weight(p) for p in pieces]
        english = sum(w for w in weights if w > 0)
        japanese = -sum(w for w in weights if w < 0)
        if min(english, japanese) >= max(10, 0.2 * (english + japanese)):
            return "mixed"
    whole = language(text)
    return "other" if whole == "mixed" else whole


def _split_blocks(lines: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Blank-line separated blocks (fenced code and $$ maths kept whole) and the blank
    lines after each block."""
    blocks, gaps, current, fence, maths = [], [], [], None, False
    for line in lines:
        stripped = line.strip()
        if fence is None and not maths and not stripped:
            if current:
                blocks.append(current)
                gaps.append([])
                current = []
            if gaps:
                gaps[-1].append(line)
            else:  # blank lines before the first block
                blocks.append([])
                gaps.append([line])
            continue
        current.append(line)
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
        elif stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif stripped.count("$$") % 2 == 1:
            maths = not maths
    if current:
        blocks.append(current)
        gaps.append([])
    return blocks, gaps


def _list_units(block: list[str]) -> list[tuple[str, str, list[str]]]:
    """A block cut into a lead paragraph and list items: (marker, indent, text lines)."""
    units, base = [], None
    for line in block:
        item = _ITEM.match(line)
        if item and (base is None or len(item.group(1)) <= base):
            base = len(item.group(1)) if base is None else base
            units.append((item.group(0), "", [line[item.end():]]))
        elif not units:
            units.append(("", "", [line]))
        else:
            marker, indent, text = units[-1]
            if len(text) == 1 and marker:
                indent = line[:len(line) - len(line.lstrip())]
            rest = line[len(indent):] if line.startswith(indent) else line.lstrip()
            units[-1] = (marker, indent, text + [rest])
    return units


def _process_block(block: list[str]) -> tuple[list[str], str | None]:
    """(new lines, language) of one block."""
    first = block[0].lstrip()
    if first.startswith(("```", "~~~", "|", "$$", "<")):
        return block, None  # code, tables, display maths, HTML: untouched
    if all(line.lstrip().startswith(">") for line in block):
        inner = [line.lstrip()[1:] for line in block]
        strip = all(not line or line.startswith(" ") for line in inner)
        inner = [line[1:] if strip and line else line for line in inner]
        text = japanese_first_markdown("\n".join(inner))
        lang = _unit_language("\n".join(line for line in inner if not line.lstrip().startswith("#")))
        return [(">" + (" " + line if line else "")) if strip else ">" + line
                for line in text.split("\n")], lang
    heading = _HEADING.match(block[0])
    if heading:
        hashes, number, title = heading.groups()
        return [hashes + number + _japanese_first_text(title)], "heading"
    if any(_ITEM.match(line) for line in block):
        units = _list_units(block)
        langs = [_unit_language("\n".join(text)) for _, _, text in units]
        rendered = []
        for (marker, indent, text), lang in zip(units, langs, strict=True):
            new = _japanese_first_text("\n".join(text)).split("\n") if lang == "mixed" else text
            indent = indent or " " * len(marker)
            rendered.append("\n".join([marker + new[0]] + [(indent + line) if line else line
                                                           for line in new[1:]]))
        text = _swap_runs(rendered, ["\n"] * (len(rendered) - 1), langs)
        whole = _unit_language("\n".join(block))
        return text.split("\n"), ("mixed" if "mixed" in langs or whole == "mixed" else whole)
    text = "\n".join(block)
    lang = _unit_language(text)
    return (_japanese_first_text(text).split("\n") if lang == "mixed" else block), lang


def japanese_first_markdown(text: str) -> str:
    """Markdown with the Japanese first: each run of English paragraphs that is followed by
    Japanese ones is swapped with them; inside a paragraph, list item or heading, English
    lines or an "English / 日本語" pair are swapped the same way. Tables, code and maths
    stay where they are; nothing is reworded."""
    lines = text.split("\n")
    blocks, gaps = _split_blocks(lines)
    # A heading glued to its paragraph is a block of its own.
    split_blocks, split_gaps = [], []
    for block, gap in zip(blocks, gaps, strict=True):
        if len(block) > 1 and _HEADING.match(block[0]):
            split_blocks += [block[:1], block[1:]]
            split_gaps += [[None], gap]
        else:
            split_blocks.append(block)
            split_gaps.append(gap)
    rendered, langs = [], []
    for block in split_blocks:
        new, lang = _process_block(block) if block else ([], None)
        rendered.append("\n".join(new))
        langs.append("barrier" if lang in ("heading", "mixed", "other") or not block else lang)
    seps = ["\n" + "".join(line + "\n" for line in gap) if gap != [None] else "\n"
            for gap in split_gaps[:-1]]
    tail = "".join("\n" + line for line in split_gaps[-1]) if split_gaps and split_gaps[-1] != [None] else ""
    return _swap_runs(rendered, seps, langs, keep_middle=True) + tail


def first_language(markdown: str) -> str | None:
    """The language a reader meets first in ``markdown``: that of the first paragraph or
    list item with prose (headings, code, tables and maths skipped), or, when it mixes
    both languages, of its first line or sentence."""
    lines = [line.lstrip().lstrip(">").strip() for line in markdown.split("\n")]
    body = [line for line in lines if not line.startswith("#")]
    for block in _split_blocks(body)[0]:
        if not block or block[0].startswith(("```", "~~~", "|", "$$", "<")):
            continue
        for _, _, text in _list_units(block):
            unit = "\n".join(text)
            lang = _unit_language(unit)
            if lang in ("mixed", "other"):
                return next(filter(None, (_leaning(p) for p in _segments(unit)[0])), None)
            if lang is not None:
                return lang
    return None


def _message_nodes(tree: ast.AST) -> list[ast.expr]:
    """The message expressions of every assert and raise, in ``ast.walk`` order."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.msg is not None:
            found.append(node.msg)
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            found.append(node.exc.args[0])
    return found


def _message_parts(node: ast.expr) -> list | None:
    """A string message as parts: ``str`` for text, ``ast.FormattedValue`` for ``{...}``;
    None when the message is not a string literal or f-string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if not isinstance(node, ast.JoinedStr):
        return None
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant) and parts and isinstance(parts[-1], str):
            parts[-1] += value.value
        elif isinstance(value, ast.Constant):
            parts.append(value.value)
        else:
            parts.append(value)
    return parts


def _parts_text(parts) -> str:
    return "".join(p if isinstance(p, str) else "{}" for p in parts)


def _parts_key(parts) -> tuple:
    """Comparable form of message parts (adjacent text merged, empty text dropped)."""
    merged = []
    for part in parts:
        if isinstance(part, str):
            if merged and isinstance(merged[-1], str):
                merged[-1] += part
            elif part:
                merged.append(part)
        else:
            merged.append(ast.dump(part))
    return tuple(m for m in merged if m != "")


_PAIR = " / "


def message_halves(parts) -> tuple[list, list] | None:
    """(English parts, Japanese parts) of an "English. / 日本語。" message, or None.

    The " / " chosen is the one where English ends and Japanese begins (the English half
    may itself hold " / ", e.g. ``s / sqrt(n)``)."""
    best, best_score = None, None
    for index, part in enumerate(parts):
        if not isinstance(part, str):
            continue
        start = 0
        while (at := part.find(_PAIR, start)) >= 0:
            start = at + 1
            left = [*parts[:index], part[:at]]
            right = [part[at + len(_PAIR):], *parts[index + 1:]]
            left_text, right_text = _parts_text(left), _parts_text(right)
            score = (_weight(left_text) - _weight(right_text))
            if best_score is None or score > best_score:
                best, best_score = (left, right), score
    if best is None:
        return None
    left, right = best
    if language(_parts_text(left)) != "en" or language(_parts_text(right)) != "ja":
        return None
    return left, right


def _weight(text: str) -> int:
    """How English (positive) or Japanese (negative) a text is."""
    prose = _NEUTRAL_SPAN.sub(" ", text)
    return sum(len(w) for w in _LATIN_WORD.findall(prose)) - 3 * len(_JA_CHAR.findall(prose))


def _string_literal(text: str) -> str:
    body = repr(text)[1:-1]
    if repr(text).startswith("'"):
        body = body.replace("\\'", "'").replace('"', '\\"')
    literal = f'"{body}"'
    assert ast.literal_eval(literal) == text
    return literal


def _chunks(parts, width: int) -> list[list]:
    """Parts cut into pieces of about ``width`` columns (a Japanese character counts two),
    at spaces or after 、。 so that each piece fits a source line."""
    chunks, current, size = [], [], 0
    for part in parts:
        if not isinstance(part, str):
            current.append(part)
            size += 6
            continue
        text = part
        while text:
            room = max(width - size, 1)
            take, cols = len(text), 0
            for k, char in enumerate(text):
                cols += 2 if _JA_CHAR.match(char) or ord(char) > 0x2e80 else 1
                if cols > room:
                    take = k
                    break
            if take < len(text):
                cut = max(text.rfind(" ", 0, take) + 1, text.rfind("、", 0, take) + 1,
                          text.rfind("。", 0, take) + 1)
                if cut <= 0:
                    if current:
                        chunks.append(current)
                        current, size = [], 0
                        continue
                    cut = max(take, 1)
                take = cut
            current.append(text[:take])
            size += sum(2 if ord(c) > 0x2e80 else 1 for c in text[:take])
            text = text[take:]
            if text:
                chunks.append(current)
                current, size = [], 0
    if current:
        chunks.append(current)
    return chunks


def _render_parts(parts) -> str:
    """Python source of one literal (f-string when it holds ``{...}``)."""
    if all(isinstance(p, str) for p in parts):
        return _string_literal("".join(parts))
    values = [ast.Constant(p) if isinstance(p, str) else p for p in parts]
    return ast.unparse(ast.JoinedStr(values=values))


def _render_message(parts, column: int, one_line: bool, bracketed: bool) -> str:
    """Source of a message expression: one literal when it fits, else literals concatenated
    across lines (inside parentheses unless the message already sits in brackets), aligned
    under the first."""
    single = _render_parts(parts)
    if one_line and column + len(single.encode("utf-16-le")) // 2 <= 100:
        return single
    indent = column if bracketed else column + 1
    pieces = [_render_parts(chunk) for chunk in _chunks(parts, max(40, 96 - indent))]
    joined = ("\n" + " " * indent).join(pieces)
    return joined if bracketed else "(" + joined + ")"


def _bracket_depth(source: str) -> dict[tuple[int, int], int]:
    """Bracket depth at the start of every token of ``source``: ``{(line, column): depth}``
    (columns in UTF-8 bytes, as ``ast`` counts them)."""
    depth, found = 0, {}
    lines = source.split("\n")
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        line = lines[tok.start[0] - 1] if tok.start[0] <= len(lines) else ""
        found[(tok.start[0], len(line[:tok.start[1]].encode()))] = depth
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
    return found


def japanese_first_code(source: str) -> tuple[str, int]:
    """``source`` with every "English. / 日本語。" assert or raise message turned into
    "日本語。 / English.", and how many messages were turned.

    Only the message literals' spans are rewritten; the result is parsed again and each
    rewritten message must hold the same two halves, swapped (else ``ValueError``)."""
    from .notebooks import without_magics

    clean = without_magics(source)
    try:
        tree = ast.parse(clean)
    except SyntaxError:
        return source, 0
    lines = source.split("\n")
    depth = _bracket_depth(clean)
    edits, expected = [], []
    for node in _message_nodes(tree):
        parts = _message_parts(node)
        halves = message_halves(parts) if parts else None
        expected.append(None if halves is None else halves)
        if halves is None:
            continue
        english, japanese = halves
        line = lines[node.lineno - 1]
        column = len(line.encode()[:node.col_offset].decode())
        new = _render_message([*japanese, _PAIR, *english], column, node.lineno == node.end_lineno,
                              depth.get((node.lineno, node.col_offset), 0) > 0)
        edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, new))
    if not edits:
        return source, 0
    for start_line, start_col, end_line, end_col, new in sorted(edits, reverse=True):
        head = lines[start_line - 1].encode()[:start_col].decode()
        tail = lines[end_line - 1].encode()[end_col:].decode()
        lines[start_line - 1:end_line] = (head + new + tail).split("\n")
    result = "\n".join(lines)
    try:
        nodes = _message_nodes(ast.parse(without_magics(result)))
    except SyntaxError as err:
        raise ValueError(f"the Japanese-first messages do not parse: {err}") from err
    if len(nodes) != len(expected):
        raise ValueError("the Japanese-first code has another number of messages")
    for node, halves in zip(nodes, expected, strict=True):
        if halves is None:
            continue
        swapped = message_halves(_message_parts(node) or [])
        english, japanese = halves
        if swapped is not None:  # the Japanese half reads as English now? it must not
            raise ValueError(f"message still reads English first: {_parts_text(_message_parts(node))!r}")
        if _parts_key(_message_parts(node)) != _parts_key([*japanese, _PAIR, *english]):
            raise ValueError(f"message halves changed: {_parts_text(_message_parts(node))!r}")
    return result, len(edits)


def japanese_first_notebook(nb) -> dict[str, int]:
    """Turn a released notebook Japanese first, in place: markdown cells and assert/raise
    messages. nbgrader's checksums of the changed locked cells are recomputed, so that
    ``nbgrader validate`` still accepts them. Returns counts of what changed."""
    from nbgrader.utils import compute_checksum

    counts = {"markdown cells": 0, "messages": 0}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            new = japanese_first_markdown(cell.source)
            counts["markdown cells"] += new != cell.source
        elif cell.cell_type == "code":
            new, turned = japanese_first_code(cell.source)
            counts["messages"] += turned
        else:
            continue
        if new != cell.source:
            cell.source = new
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("checksum"):
                meta["checksum"] = compute_checksum(cell)
    return counts


def make_japanese_first(dest: Path) -> dict[str, int]:
    """Turn the published notebooks and module READMEs under ``dest/modules`` Japanese first."""
    import nbformat

    counts = {"notebooks": 0, "readmes": 0, "markdown cells": 0, "messages": 0}
    for path in sorted((Path(dest) / "modules").glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        try:
            changed = japanese_first_notebook(nb)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        nbformat.write(nb, path)
        counts["notebooks"] += 1
        counts["markdown cells"] += changed["markdown cells"]
        counts["messages"] += changed["messages"]
    for path in sorted((Path(dest) / "modules").glob("*/README.md")):
        path.write_text(japanese_first_markdown(path.read_text(encoding="utf-8")), encoding="utf-8")
        counts["readmes"] += 1
    return counts
