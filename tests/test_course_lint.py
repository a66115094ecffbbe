"""Course lint as tests: every authoring rule holds over the whole course, and each rule
can fail (shown on small notebooks built here)."""

from __future__ import annotations

import pytest
from conftest import ROOT, graded, make_notebook, new_code_cell, new_markdown_cell
from sscity.course import lint
from sscity.course.notebooks import iter_notebooks, module_ids

SOURCES = list(iter_notebooks(ROOT, "solutions"))
RELEASES = list(iter_notebooks(ROOT, "modules"))
BOTH = SOURCES + RELEASES
EN_JA = "Run the cell and check the result. / セルを実行して結果を確かめましょう。"


def test_the_course_has_modules_and_each_is_released():
    assert module_ids(ROOT, "solutions"), "no module in solutions/"
    assert module_ids(ROOT, "solutions") == module_ids(ROOT, "modules")
    for module in module_ids(ROOT, "solutions"):
        names = {p.name for p in (ROOT / "solutions" / module).iterdir()}
        assert {"README.md", "lesson.ipynb", "assignment.ipynb"} <= names, module


@pytest.mark.parametrize("check, notebooks", [
    (lint.check_unique_grade_ids, SOURCES),
    (lint.check_schema_version, BOTH),
    (lint.check_points_total, SOURCES),
    (lint.check_answers_followed_by_tests, SOURCES),
    (lint.check_setup_cells, SOURCES),
    (lint.check_answers_not_builtins, SOURCES),
    (lint.check_tiers, SOURCES),
    (lint.check_no_outputs, BOTH),
    (lint.check_bilingual_markdown, RELEASES),  # what learners read, stubs included
    (lint.check_bilingual_test_messages, BOTH),  # hidden tests (solutions/) included
    (lint.check_recurrent_path_box, SOURCES),
    (lint.check_figures_described, SOURCES),
    (lint.check_list_numbering, BOTH),
    (lint.check_japanese_line_breaks, BOTH),
    (lint.check_legend_sizes, SOURCES),
    (lint.check_bilingual_figure_labels, SOURCES),
], ids=lambda v: v.__name__ if callable(v) else "")
def test_course_rule(check, notebooks):
    problems = check(notebooks)
    assert not problems, "\n".join(problems)


def test_modules_hold_no_solutions_hidden_tests_or_mark_schemes():
    problems = lint.check_no_leaks(SOURCES, RELEASES)
    assert not problems, "\n".join(problems)
    for path in (ROOT / "modules").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "MARK SCHEME"):
                assert marker not in text, f"{path} contains {marker}"
    assert not list((ROOT / "modules").rglob("known-wrong.toml"))


def test_notebooks_and_module_readmes_follow_the_glossary():
    problems = lint.check_glossary(SOURCES, lint.module_readmes(ROOT), root=ROOT)
    assert not problems, "\n".join(problems)


def test_module_readmes_break_no_japanese_sentence():
    problems = lint.check_japanese_line_breaks([], lint.module_readmes(ROOT))
    assert not problems, "\n".join(problems)


def test_every_autograded_answer_has_a_known_wrong_answer():
    problems = lint.check_known_wrong_coverage(ROOT, SOURCES)
    assert not problems, "\n".join(problems)


def test_notebook_and_package_code_is_clean_under_ruff():
    problems = lint.check_ruff(ROOT)
    assert not problems, "\n".join(problems)


# --- each rule can fail -------------------------------------------------------------------

def _task(gid="t1", points=100, tier="core", test_tier=None, message=EN_JA):
    return [
        new_markdown_cell("## Task 1 — Sum / 課題1 — 合計"),
        new_code_cell("x = 1", metadata=graded("answer", gid, tier)),
        new_code_cell(f"assert x == 1, {message!r}",
                      metadata=graded("test", f"{gid}-tests", test_tier or tier, points)),
    ]


def test_good_notebook_passes_every_rule():
    nb = make_notebook(_task())
    for check in (lint.check_unique_grade_ids, lint.check_schema_version, lint.check_points_total,
                  lint.check_answers_followed_by_tests, lint.check_tiers, lint.check_no_outputs,
                  lint.check_bilingual_markdown, lint.check_bilingual_test_messages,
                  lint.check_figures_described):
        assert check([nb]) == [], check.__name__


def test_duplicate_grade_ids_are_found():
    a, b = make_notebook(_task("same")), make_notebook(_task("same"), module="98-other")
    assert "used 2 times" in lint.check_unique_grade_ids([a, b])[0]


def test_wrong_schema_version_is_found():
    nb = make_notebook(_task())
    nb.nb.cells[1].metadata["nbgrader"]["schema_version"] = 1
    assert lint.check_schema_version([nb])


def test_points_must_sum_to_100():
    assert "sum to 90" in lint.check_points_total([make_notebook(_task(points=90))])[0]
    assert lint.check_points_total([make_notebook(_task(points=5), name="lesson")])


def test_answer_without_test_is_found():
    cells = _task()
    cells[2] = new_code_cell("print(x)")
    assert "not followed by a test" in lint.check_answers_followed_by_tests([make_notebook(cells)])[0]


def test_setup_cells_must_be_locked_and_not_rebind_tested_answers():
    setup = {"nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": "s-setup",
                          "schema_version": 3}}
    good = make_notebook([new_code_cell("import math", metadata=setup), *_task()])
    assert lint.check_setup_cells([good]) == []
    unlocked = make_notebook([new_code_cell("import math"), *_task()])
    assert "neither an answer nor a test" in lint.check_setup_cells([unlocked])[0]
    # The test reads x; a setup cell that also binds x would hand every test its own x.
    rebinds = make_notebook([*_task(), new_code_cell("for x in range(3):\n    pass", metadata=setup)])
    assert "binds 'x'" in lint.check_setup_cells([rebinds])[0]
    # A loop variable no test reads is not a problem.
    loop = make_notebook([*_task(), new_code_cell("for y in range(3):\n    pass", metadata=setup)])
    assert lint.check_setup_cells([loop]) == []


def test_an_answer_named_like_a_builtin_that_tests_read_is_found():
    cells = _task()
    cells[1] = new_code_cell("max = 1", metadata=graded("answer", "t1"))
    cells[2] = new_code_cell(f"assert max == 1, {EN_JA!r}", metadata=graded("test", "t1-tests", points=100))
    assert "built-in" in lint.check_answers_not_builtins([make_notebook(cells)])[0]
    assert lint.check_answers_not_builtins([make_notebook(_task())]) == []


def test_missing_or_mismatched_tier_is_found():
    assert "core or extension" in lint.check_tiers([make_notebook(_task(tier=None))])[0]
    assert "is core but" in lint.check_tiers([make_notebook(_task(test_tier="extension"))])[0]


def test_stored_outputs_are_found():
    nb = make_notebook(_task())
    nb.nb.cells[1].execution_count = 3
    assert lint.check_no_outputs([nb])


@pytest.mark.parametrize("text, ok", [
    ("## Task 1 — Stations / 課題1 — 駅", True),
    ("Measure the distance between the two stations in metres, not degrees.\n\n"
     "二つの駅の距離を度ではなくメートルで測りましょう。", True),
    ("Measure the distance between the two stations in metres, not degrees.", False),
    ("二つの駅の距離を度ではなくメートルで測りましょう。", False),
    ("Measure the distance between the two stations in metres, not degrees, "
     "using the projected CRS of Ibaraki (EPSG:6677). 駅", False),
    ("二つの駅の距離を度ではなくメートルで測りましょう。投影座標系を使います。EPSG CRS", False),
])
def test_bilingual_detection(text, ok):
    assert lint.is_bilingual(text) is ok


def test_monolingual_markdown_and_messages_are_found():
    cells = _task(message="x should be 1")
    cells.append(new_markdown_cell("This paragraph is only in English, and it is long enough."))
    nb = make_notebook(cells)
    assert "not in both English and Japanese" in lint.check_bilingual_markdown([nb])[0]
    assert "not in English and Japanese" in lint.check_bilingual_test_messages([nb])[0]
    cells = _task()
    cells[2] = new_code_cell("assert x == 1", metadata=cells[2].metadata)
    assert "without a message" in lint.check_bilingual_test_messages([make_notebook(cells)])[0]


def test_hidden_test_messages_must_be_bilingual_too():
    hidden_problem = "hidden assert without a bilingual message"
    cells = _task()
    cells[2].source += "\n### BEGIN HIDDEN TESTS\nassert x == 1\n### END HIDDEN TESTS\n"
    problems = lint.check_bilingual_test_messages([make_notebook(cells)])
    assert len(problems) == 1 and hidden_problem in problems[0] and "line 3" in problems[0]
    # An English-only message, a bare raise of an error class and a message held in a name
    # (not EN + JA string parts in the expression) are all flagged.
    for hidden in ('assert x == 1, "x should be one"', "raise AssertionError",
                   "raise AssertionError()", "assert x == 1, MESSAGE"):
        cells = _task()
        cells[2].source = (f"MESSAGE = {EN_JA!r}\n" + cells[2].source
                           + f"\n### BEGIN HIDDEN TESTS\nif x:\n    {hidden}\n### END HIDDEN TESTS\n")
        problems = lint.check_bilingual_test_messages([make_notebook(cells)])
        assert len(problems) == 1 and hidden_problem in problems[0], (hidden, problems)
    # Bilingual hidden messages pass: a plain literal, literals concatenated across lines, an
    # f-string; a bare re-raise inside except is not a message.
    cells = _task()
    cells[2].source += (
        "\n### BEGIN HIDDEN TESTS\n"
        f"assert x == 1, {EN_JA!r}\n"
        'assert x + 1 == 2, ("Add one to the answer and check again. / "\n'
        '                    "答えに1を足してもう一度確かめましょう。")\n'
        'for k in range(2):\n'
        '    assert x * k == k, f"Multiply by {k} and compare. / {k} を掛けて比べましょう。"\n'
        "try:\n    pass\nexcept ValueError:\n    raise\n"
        "### END HIDDEN TESTS\n")
    assert lint.check_bilingual_test_messages([make_notebook(cells)]) == []


def test_visible_problems_keep_the_visible_wording_beside_hidden_ones():
    cells = _task()
    cells[2].source = ("assert x == 1\n### BEGIN HIDDEN TESTS\nassert x == 1, 'only English here'\n"
                       "### END HIDDEN TESTS\n")
    first, second = lint.check_bilingual_test_messages([make_notebook(cells)])
    assert "line 1: assert without a message" in first
    assert "line 3: hidden assert without a bilingual message" in second and "only English" in second


# --- glossary and the recurrent path box ---------------------------------------------------

GLOSSARY = lint.load_glossary(ROOT / "course" / "GLOSSARY.md")


def test_the_glossary_parses_and_every_pattern_compiles():
    by_term = {e.japanese: e for e in GLOSSARY}
    assert len(GLOSSARY) >= 40 and "ウェイト" in by_term and "被覆確率" in by_term
    assert all(isinstance(p.pattern, str) for e in GLOSSARY for p in e.avoid)
    # An escaped pipe inside a table cell belongs to the regular expression.
    tier = next(e for e in GLOSSARY if e.japanese.startswith("区分"))
    assert [p.pattern for p in tier.avoid] == ["（(基本|発展), "]
    assert tier.avoid[0].search("課題1 — 合計（基本, 15点）")
    assert not tier.avoid[0].search("課題1 — 合計（基本・15点）")
    weight = by_term["ウェイト"]
    assert [p.pattern for p in weight.avoid] == ["重み(?!付き最小二乗)", "ウエイト"]


def test_a_malformed_glossary_is_refused(tmp_path):
    bad = tmp_path / "GLOSSARY.md"
    bad.write_text("| English | 日本語 | Avoid / 使わない | Note / 注 |\n|---|---|---|---|\n"
                   "| weight | ウェイト | `重み(` | |\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not compile"):
        lint.load_glossary(bad)
    bad.write_text("| weight | ウェイト | 重み | |\n", encoding="utf-8")
    with pytest.raises(ValueError, match="outside backticks"):
        lint.load_glossary(bad)


def test_drifting_terms_are_flagged_with_the_term_to_use(tmp_path):
    cells = [
        new_markdown_cell("## Weights / 重みの考え方\n\nWeights. / 各回答者の重みを求めます。"),
        new_code_cell("# 被覆率を計算する\nlabel = 'テンポラル API'\nコロプレス = 1\n"),
        new_markdown_cell("Least squares. / 重み付き最小二乗法（WLS）を使います。ウェイト付き平均も。"),
        new_markdown_cell("## Task 1 — Sum (core, 15 points) / 課題1 — 合計（基本・15点）"),
    ]
    nb = make_notebook(cells, name="lesson")
    readme = tmp_path / "solutions" / "99-test" / "README.md"
    readme.parent.mkdir(parents=True)
    readme.write_text("# Test / テスト\n\n| a | b |\n|---|---|\n| 1 | 有効サンプルサイズ |\n",
                      encoding="utf-8")
    problems = lint.check_glossary([nb], [readme], GLOSSARY)
    assert len(problems) == 5, problems
    weight = [p for p in problems if "'重み'" in p]
    assert len(weight) == 2 and all("cell 0" in p and "use ウェイト" in p for p in weight)
    assert "cell 0 line 3" in weight[1]
    assert any("cell 1 line 1: '被覆率' -> use 被覆確率" in p for p in problems)  # a comment
    assert any("cell 1 line 2: 'テンポラル' -> use 時系列 API" in p for p in problems)  # a string
    assert not any("コロプレス" in p for p in problems)  # an identifier is code, not prose
    assert not any("cell 2" in p or "cell 3" in p for p in problems)  # 重み付き最小二乗法 is kept
    assert any(p.startswith("solutions/99-test/README.md line 5: '有効サンプルサイズ' -> use 有効標本サイズ")
               for p in problems)


def test_tier_labels_with_a_comma_are_flagged():
    nb = make_notebook([new_markdown_cell("## Task 1 — Sum (core, 15 points) / 課題1 — 合計（基本, 15点）")])
    (problem,) = lint.check_glossary([nb], [], GLOSSARY)
    assert "'（基本, '" in problem and "（基本・15点）" in problem


def test_a_lesson_without_the_recurrent_path_box_is_found():
    title = new_markdown_cell("# Module 99 — Test / モジュール99 — テスト")
    box = new_markdown_cell("> **リカレント履修の道筋 / Recurrent path** (約1時間 / about 1 h)\n>\n"
                            "> - 第1節を精読 / read section 1 closely")
    other = new_markdown_cell("Some text. / 本文です。")
    assert lint.check_recurrent_path_box([make_notebook([title, box], name="lesson")]) == []
    assert lint.check_recurrent_path_box([make_notebook([title, other], name="lesson")])
    late = make_notebook([title, other, other, box], name="lesson")
    assert "first 3 cells" in lint.check_recurrent_path_box([late])[0]
    assert lint.check_recurrent_path_box([make_notebook([title], name="assignment")]) == []
    # The box must be prose, not a code comment.
    code = new_code_cell("# リカレント履修の道筋")
    assert lint.check_recurrent_path_box([make_notebook([title, code], name="lesson")])


def test_undescribed_figure_is_found():
    cells = [new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"),
             new_markdown_cell("Next we load data. / 次にデータを読み込みます。")]
    assert "does not describe it" in lint.check_figures_described([make_notebook(cells)])[0]
    cells[1] = new_markdown_cell("**Figure.** A rising line. **図.** 右上がりの線。")
    assert lint.check_figures_described([make_notebook(cells)]) == []


def test_leaked_solution_is_found(tmp_path):
    source = make_notebook([new_code_cell(
        "def f():\n    ### BEGIN SOLUTION\n    return sorted(values)[::-1]\n    ### END SOLUTION",
        metadata=graded("answer", "f"))], tmp=tmp_path)
    leaked = make_notebook([new_code_cell("def f():\n    return sorted(values)[::-1]",
                                          metadata=graded("answer", "f"))],
                           kind="modules", tmp=tmp_path)
    problems = lint.check_no_leaks([source], [leaked])
    assert problems and "leaks" in problems[0]


def test_known_wrong_coverage_names_uncovered_answers_and_bad_entries(tmp_path):
    nb = make_notebook(_task(), tmp=tmp_path)
    assert "no known-wrong" in lint.check_known_wrong_coverage(tmp_path, [nb])[0]
    (tmp_path / "solutions" / "99-test" / "known-wrong.toml").write_text(
        '[[wrong]]\nnotebook = "assignment"\nanswer = "t1"\nmust_fail = "nope"\n'
        'mistake = "off by one"\ncode = "x = 2"\n')
    assert "'nope' is not a test cell" in lint.check_known_wrong_coverage(tmp_path, [nb])[0]
    (tmp_path / "solutions" / "99-test" / "known-wrong.toml").write_text(
        '[[wrong]]\nnotebook = "assignment"\nanswer = "t1"\n')
    assert "lacks must_fail, mistake, code" in lint.check_known_wrong_coverage(tmp_path, [nb])[0]


# --- how markdown renders Japanese --------------------------------------------------------

STEPS_EN = ("1. Run the cells from top to bottom.\n2. Answer in each answer cell.\n"
            "3. Run the test cell below it.\n")
STEPS_JA = "1. セルを上から順に実行します。\n2. 各解答セルで答えます。\n3. すぐ下のテストセルを実行します。\n"


def _ordered_list_starts(markdown):
    """What a real renderer makes of ``markdown``: the ordered lists and their item counts."""
    import re

    import mistune

    html = mistune.html(markdown)
    return [(int(start or 1), body.count("<li>")) for start, body in
            re.findall(r'<ol(?: start="(\d+)")?>(.*?)</ol>', html, re.S)]


def test_japanese_steps_run_on_from_english_ones_are_found():
    merged = "## How to work / 取り組み方\n\n" + STEPS_EN + "\n" + STEPS_JA
    assert _ordered_list_starts(merged) == [(1, 6)]  # the renderer shows 日本語 as 4-6
    problems = lint.check_list_numbering([make_notebook([new_markdown_cell(merged)])])
    assert len(problems) == 1 and "numbered 4, not 1" in problems[0] and "日本語" in problems[0]
    separated = "## How to work / 取り組み方\n\n" + STEPS_EN + "\n<!-- 日本語 / Japanese -->\n\n" + STEPS_JA
    assert _ordered_list_starts(separated) == [(1, 3), (1, 3)]
    assert lint.check_list_numbering([make_notebook([new_markdown_cell(separated)])]) == []
    # English numbered 1-3 and 4-6 in one list is one list, not a restart; nor is prose
    # that starts with a number ("... and Midorino\n54400034. Now").
    steps_6 = STEPS_EN + "4. Validate.\n5. Submit.\n6. Fetch feedback.\n\n手順は以上です。"
    prose = "Midorino is\n54400034. ミドリノは 54400034 です。"
    for text in (steps_6, prose):
        assert lint.check_list_numbering([make_notebook([new_markdown_cell(text)])]) == [], text


def test_the_japanese_first_edition_keeps_the_separated_lists_numbered_from_one():
    from sscity.course.publish import japanese_first_markdown

    separated = STEPS_EN + "\n<!-- 日本語 / Japanese -->\n\n" + STEPS_JA
    flipped = japanese_first_markdown(separated)
    assert flipped.startswith("1. セルを上から順に") and _ordered_list_starts(flipped) == [(1, 3), (1, 3)]
    assert lint.check_list_numbering([make_notebook([new_markdown_cell(flipped)])]) == []


@pytest.mark.parametrize("text, joined", [
    ("各解答セルでコードに\n置き換えます。", "各解答セルでコードに置き換えます。"),
    ("公開テストに合格です。\n採点時には", "公開テストに合格です。採点時には"),
    ("**上から順に**\n実行します", "**上から順に**実行します"),
    ("2. 各解答セルで\n   置き換えます。\n3. 次へ", "2. 各解答セルで置き換えます。\n3. 次へ"),
    ("> 何が実物で\n> 何が合成データか", "> 何が実物で何が合成データか"),
    # left alone: English, a new list item, a heading, code, a hard break, a blank line
    ("Run the cell\nand check.", None),
    ("- 項目一\n- 項目二", None),
    ("## 取り組み方\n下の手順で進めます。", None),
    ("```\n# 日本語の\n# コメント\n```", None),
    ("一行目の終わり  \n次の行", None),
    ("段落一。\n\n段落二。", None),
    ("`Client` を通して\n`AssertionError` が", None),
])
def test_line_breaks_inside_japanese_sentences_are_found_and_joined(text, joined):
    nb = make_notebook([new_markdown_cell(text)])
    problems = lint.check_japanese_line_breaks([nb])
    assert bool(problems) == (joined is not None), problems
    assert lint.join_japanese_lines(text) == (joined or text)
    if joined:
        assert "shows as a space" in problems[0] and "行をつなげてください" in problems[0]
        assert lint.check_japanese_line_breaks([make_notebook([new_markdown_cell(joined)])]) == []


def test_joining_removes_the_spaces_a_renderer_puts_into_japanese(tmp_path):
    import re

    import mistune

    text = ("2. 各**解答セル**で、`# YOUR CODE HERE` を自分のコードに\n   置き換え、名前をそのとおりに\n"
            "   定義します。\n\n> 歩行者は\n> モデルです。")
    cjk = "[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]"
    spaced = re.compile(f"{cjk}(?:</?strong>)?\\s+(?:</?strong>)?{cjk}")
    assert spaced.search(mistune.html(text))
    assert not spaced.search(mistune.html(lint.join_japanese_lines(text)))
    readme = tmp_path / "solutions" / "99-test" / "README.md"
    readme.parent.mkdir(parents=True)
    readme.write_text(text, encoding="utf-8")
    assert len(lint.check_japanese_line_breaks([], [readme])) == 3


@pytest.mark.parametrize("call, small", [
    ('ax.legend(fontsize=7, loc="upper left")', True),
    ('ax.legend(title="x / 地区", title_fontsize=8)', True),
    ('fig.legend(fontsize="x-small")', True),
    ('ax.legend(fontsize=9)', False),
    ('ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))', False),
])
def test_small_legends_are_found(call, small):
    cell = new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n" + call)
    problems = lint.check_legend_sizes([make_notebook([cell])])
    assert bool(problems) == small, problems
    if small:
        assert "line 3" in problems[0] and "凡例" in problems[0]


@pytest.mark.parametrize("call, english_only", [
    ('ax.set_title("Mean happiness per district")', True),
    ('ax.plot([1], label=f"route of {name} across the city")', True),
    ('fig.suptitle("Shared control" + " in the crossing")', True),
    ('ax.set_title("Mean happiness / 地区別の幸福度")', False),
    ('ax.plot([1], label="pybullet")', False),
    ('ax.set_xlabel("x (m)")', False),
])
def test_english_only_figure_text_is_found(call, english_only):
    cell = new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nname = 'a'\n" + call)
    problems = lint.check_bilingual_figure_labels([make_notebook([cell])])
    assert bool(problems) == english_only, problems
    if english_only:
        assert "line 4" in problems[0] and "日本語" in problems[0]
