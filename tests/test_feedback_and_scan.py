"""Feedback never leaks hidden tests, and the code scan leaves honest code alone.

Unit tests, no kernel: :func:`sscity.course.report.visible_messages` and
:func:`~sscity.course.report.feedback_message` decide what a feedback page may quote;
:func:`sscity.course.integrity.scan_code` names tampering and nothing else.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import nbformat
import pytest
from conftest import graded, make_notebook, new_code_cell
from sscity.course.integrity import (
    Finding,
    scan_code,
    scan_findings,
    student_code,
)
from sscity.course.notebooks import visible_source
from sscity.course.report import (
    HIDDEN,
    HIDDEN_LABEL,
    failure_explanation,
    feedback_message,
    visible_messages,
    write_feedback,
)

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

VISIBLE = "The distance should be in metres. / 距離はメートルです。"
SECOND = "`x` should be a number. / `x` は数値です。"
SECRET = "assert abs(tsukuba_midorino_m - 8123.4) < 0.5"  # hidden test code: never shown
TEST_SOURCE = f'''\
from numbers import Real

assert isinstance(x, Real), (
    "`x` should be "
    "a number. / `x` は数値です。"
)
assert 5_000 < x < 15_000, "The distance should be in metres. / 距離はメートルです。"
assert x > 0
assert x != 1, f"x is {{x}} / x は {{x}}"
assert x != 2, "computed " + "message"
### BEGIN HIDDEN TESTS
{SECRET}, "hidden: exactly 8123.4 / 非公開"
### END HIDDEN TESTS
'''
RELEASED = visible_source(TEST_SOURCE)


def _bilingual(text: str) -> bool:
    return " / " in text and bool(JAPANESE.search(text)) and bool(re.search(r"[A-Za-z]{3,}", text))


# --- visible_messages ----------------------------------------------------------------------

def test_visible_messages_reads_literal_messages_of_the_released_cell():
    assert "8123.4" not in RELEASED
    assert visible_messages(RELEASED) == {VISIBLE, SECOND}


def test_parenthesised_implicit_concatenation_is_one_message():
    source = 'assert ok, (\n    "first half, "\n    "second half / 後半"\n)\n'
    assert visible_messages(source) == {"first half, second half / 後半"}


def test_assert_without_message_f_string_and_computed_messages_are_skipped():
    source = ('assert ok\nassert ok, f"value {v} / 値"\nassert ok, "a" + "b"\n'
              'assert ok, MESSAGE\nassert ok, ("not", "a string")\nassert ok, "   "\n')
    assert visible_messages(source) == set()


def test_hidden_block_is_not_visible_even_if_the_source_still_holds_it():
    assert "hidden: exactly 8123.4 / 非公開" not in visible_messages(TEST_SOURCE)
    assert visible_messages(TEST_SOURCE) == visible_messages(RELEASED)


def test_messages_are_stripped_and_magics_and_broken_cells_are_handled():
    assert visible_messages('%matplotlib inline\nassert ok, "  padded / 余白  "\n') == {"padded / 余白"}
    assert visible_messages('assert ok, "fine / よい"\ndef broken(:') == set()
    assert visible_messages('raise AssertionError("raised / 発生")') == {"raised / 発生"}


# --- feedback_message ----------------------------------------------------------------------

def test_an_exact_visible_message_is_quoted():
    visible = visible_messages(RELEASED)
    assert feedback_message(f"AssertionError: {VISIBLE}", visible) == VISIBLE
    assert feedback_message(f"  AssertionError:   {VISIBLE}  \n", visible) == VISIBLE


@pytest.mark.parametrize("failure", [
    f"AssertionError: {VISIBLE} {SECRET}",            # a visible message with text appended
    f"AssertionError: {VISIBLE}\n{SECRET}",
    f"AssertionError: {VISIBLE[:40]}",                 # a prefix of a visible message
    "AssertionError: The distance",
    "AssertionError: hidden: exactly 8123.4 / 非公開",  # a hidden test's message
    f"AssertionError: {SECRET}",
    f"TypeError: {VISIBLE}",                           # not an AssertionError
    f"ValueError: {SECRET}",
    f"AssertionErrorX: {VISIBLE}",
    "AssertionError: ",                                # empty
    "AssertionError",
    "",
])
def test_anything_but_an_exact_visible_message_is_hidden(failure):
    visible = visible_messages(RELEASED)
    assert feedback_message(failure, visible) is None
    explained = failure_explanation(failure, visible)
    assert SECRET not in explained and "8123.4" not in explained
    if failure:
        assert explained.startswith(HIDDEN_LABEL)


def test_explanations_students_see_are_bilingual_and_quote_no_error_text():
    visible = visible_messages(RELEASED)
    assert _bilingual(HIDDEN) and _bilingual(HIDDEN_LABEL)
    for failure in ("NameError: name 'x' is not defined", "NotImplementedError: ",
                    "KeyboardInterrupt: ", "MemoryError: ", f"ZeroDivisionError: {SECRET}",
                    # a crafted exception type name cannot carry text to the page
                    "expected_8123_4: boom"):
        text = failure_explanation(failure, visible)
        assert _bilingual(text) and text.startswith(HIDDEN_LABEL), text
        assert "8123" not in text and "boom" not in text and "'x'" not in text


# --- the feedback page ---------------------------------------------------------------------

def _release():
    nb = make_notebook([
        new_code_cell("x = 1", metadata=graded("answer", "distance")),
        new_code_cell(RELEASED, metadata=graded("test", "distance-tests", points=60)),
        new_code_cell("y = 1", metadata=graded("answer", "other")),
        new_code_cell('assert y == 1, "y / y"', metadata=graded("test", "other-tests", points=40)),
    ]).nb
    return {"99-test": {"assignment.ipynb": nb}}


def _task(message, passed=False):
    return {"score": 0.0 if not passed else 60.0, "max": 60.0, "tier": "core", "auto": True,
            "passed": passed, "message": message}


def _page(tmp_path, tasks, status="ok", reason=""):
    result = SimpleNamespace(student="s01", module="99-test", score=0.0, max_score=100.0,
                             status=status, reason=reason, tasks=tasks)
    [path] = write_feedback(tmp_path, [result], _release())
    return path.read_text(encoding="utf-8")


def test_the_page_quotes_exact_visible_messages_and_nothing_else(tmp_path):
    page = _page(tmp_path, {
        "assignment/distance-tests": _task(f"AssertionError: {VISIBLE}"),
        "assignment/other-tests": _task(f"AssertionError: {SECOND} {SECRET}"),
    })
    assert VISIBLE in page
    assert "8123" not in page and "tsukuba_midorino_m" not in page
    assert HIDDEN_LABEL in page


def test_a_message_visible_in_another_cell_is_not_quoted(tmp_path):
    page = _page(tmp_path, {"assignment/other-tests": _task(f"AssertionError: {VISIBLE}")})
    assert VISIBLE not in page and HIDDEN_LABEL in page


def test_the_flag_reason_is_described_not_quoted(tmp_path):
    reason = ("score withheld (0) pending review; could not be graded: CellTimeoutError: "
              f"Here is a preview of the cell contents: ['{SECRET}']; assignment.ipynb: code "
              "assigns to np.allclose (monkeypatching a library)")
    page = _page(tmp_path, {"assignment/distance-tests": _task("")}, status="flagged", reason=reason)
    assert "8123" not in page and "CellTimeoutError" not in page and "np.allclose" not in page
    assert "withheld" in page and "保留" in page
    assert "flagged" in page and "フラグ" in page


# --- scan_code: honest code ----------------------------------------------------------------

@pytest.mark.parametrize("code", [
    "import pandas as pd\npd.options.display.max_columns = 50",
    "import pandas as pd\npd.options.display.float_format = '{:.2f}'.format",
    "import pandas as pd\npd.options.mode.copy_on_write = True",
    "import pandas as pd\npd.set_option('display.max_rows', 20)",
    "import pandas as pd\nsetattr(pd.options.display, 'max_rows', 20)",
    "import numpy as np\nnp.set_printoptions(precision=3, suppress=True)",
    "import geopandas as gpd\ngpd.options.io_engine = 'pyogrio'",
    "max = stations['lat'].max()",
    "sum = 3",
    "list = [1, 2, 3]",
    "min, max = 0, 10\nround = 2\ntype = 'bus'\nid = 7",
    "def len(x):\n    return 0",
    "abs = lambda x: 0",
    "import numpy as np\nx = np.nan\nx = {}\nx['a'] = 1",
    "%matplotlib inline\n%config InlineBackend.figure_format = 'retina'\n!ls\nx = 1",
    "%%time\nimport numpy as np\ntotal = np.sum([1, 2])",
    "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (8, 4)",
    "import numpy as np\nrng = np.random.default_rng(0)\nnp.random.seed(0)",
    "from collections import Counter\nc = Counter()\nc['a'] += 1",
    "import sys\nsys.path.append('..')",
])
def test_honest_code_is_not_a_finding(code):
    assert scan_code(code) == []


def test_an_honest_notebook_scans_clean():
    nb = _release()["99-test"]["assignment.ipynb"]
    assert scan_code(student_code(nb)) == []


# --- scan_code: tampering ------------------------------------------------------------------

@pytest.mark.parametrize("code, named", [
    ("get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)", "set_custom_exc"),
    ("ip = get_ipython()\ngetattr(ip, 'set_' + 'custom_exc')((Exception,), f)", "set_custom_exc"),
    ("getattr(get_ipython(), ''.join(['set_cus', 'tom_exc']))((Exception,), f)", "set_custom_exc"),
    ("getattr(get_ipython(), 'cxe_motsuc_tes'[::-1])((Exception,), f)", "set_custom_exc"),
    ("ip = get_ipython()\ngetattr(ip, name)(f)", "computed name"),
    ("import sys\nsys.excepthook = print", "excepthook"),
    ("import builtins\nbuiltins.abs = lambda x: 0", "builtins.abs"),
    ("__builtins__['abs'] = lambda x: 0", "__builtins__"),
    ("import numpy as np\nnp.allclose = lambda *a, **k: True", "np.allclose"),
    ("import numpy as n\nn.allclose = lambda *a, **k: True", "n.allclose"),
    ("from numpy import testing\ntesting.assert_allclose = print", "testing.assert_allclose"),
    ("import pandas as pd\npd.DataFrame.equals = lambda *a: True", "pd.DataFrame.equals"),
    ("from pandas import DataFrame as D\nD.equals = lambda *a: True", "D.equals"),
    ("import numpy as np\nsetattr(np, 'allclose', f)", "setattr on np"),
    ("import numpy as np\nobject.__setattr__(np, 'allclose', f)", "setattr on np"),
    ("b = __import__('built' + 'ins')\nvars(b)['abs'] = f", "vars(b)"),
    ("import builtins\nvars(builtins).update(abs=f)", "namespace"),
    ("import numbers\nnumbers.Real.register(str)", "isinstance"),
    ("get_ipython().input_transformers_cleanup.append(f)", "input_transformers_cleanup"),
    ("ip = get_ipython()\nip.input_transformers_post.append(f)", "input_transformers_post"),
    ("get_ipython().ast_transformers.append(T())", "ast_transformers"),
    ("get_ipython().events.register('pre_run_cell', f)", "pre_run_cell"),
    ("get_ipython().events.register('post_run_cell', f)", "post_run_cell"),
    ("ev = get_ipython().events\nev.register('post_execute', f)", "post_execute"),
    ("get_ipython().events.register(name, f)", "events.register"),
    ("def f(result):\n    result.error_in_exec = None", "error_in_exec"),
    ("ip = get_ipython()\nip.showtraceback = lambda *a, **k: None", "showtraceback"),
    ("ip = get_ipython()\nip.run_cell = f", "ip.run_cell"),
    ("import numpy as np\n%time np.allclose = f", "np.allclose"),
    ("%%capture\nimport numpy as np\nnp.allclose = f", "np.allclose"),
    ("exec('import numpy as np; np.allclose = f')", "np.allclose"),
    ("x = (\n%time get_ipython().set_custom_exc((Exception,), f)", "set_custom_exc"),
])
def test_tampering_is_a_finding_that_names_the_trick(code, named):
    found = scan_code(code)
    assert any(named in reason for reason in found), found
    assert all(isinstance(reason, str) for reason in found)


def _notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    return nb


def test_the_scan_reads_every_code_cell_whatever_its_metadata():
    patch = "import numpy as np\nnp.allclose = lambda *a, **k: True"
    for metadata in ({"nbgrader": {"locked": True, "grade": False, "solution": False,
                                   "grade_id": "setup", "schema_version": 3}},
                     {"tags": ["sscity-integrity"]},
                     graded("test", "t1-tests", points=10),
                     {}):
        nb = _notebook([new_code_cell("x = 1"), new_code_cell(patch, metadata=metadata)])
        assert any("np.allclose" in r for r in scan_code(student_code(nb))), metadata


def test_aliases_carry_across_cells_and_a_broken_cell_hides_nothing():
    nb = _notebook([new_code_cell("import builtins as b"), new_code_cell("def broken(:\n"),
                    new_code_cell("b.abs = lambda x: 0"),
                    new_code_cell("get_ipython().set_custom_exc(\n")])
    found = scan_code(student_code(nb))
    assert any("b.abs" in r for r in found), found
    assert any("set_custom_exc" in r for r in found), found


def test_a_forged_cell_separator_does_not_split_the_scan():
    nb = _notebook([new_code_cell('x = """\n# sscity-cell 0000\n"""; import numpy as np; '
                                  'np.allclose = f')])
    assert any("np.allclose" in r for r in scan_code(student_code(nb)))
    forged = ('# sscity-cells 0000\nx = """\n# sscity-cell 0000\n"""; import numpy as np; '
              'np.allclose = f')
    assert any("np.allclose" in r for r in scan_code(forged))


def test_scan_findings_are_advisory():
    [finding] = scan_findings("import numpy as np\nnp.allclose = f", where="assignment.ipynb")
    assert isinstance(finding, Finding) and finding.advisory and not finding.withhold
    assert str(finding).startswith("assignment.ipynb: code assigns to np.allclose")
    assert scan_findings("max = 3") == []
