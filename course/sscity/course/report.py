"""What grading gives back: feedback for each student, grades per track, and a report for
the instructor.

- ``DIR/feedback/<student>/<module>.html`` -- points per task and, for each failed task,
  the reason in plain words (English and Japanese). A failure message is quoted only when
  it is, exactly, the message of a visible assert of the released test cell
  (:func:`visible_messages`, :func:`feedback_message`); anything else -- a hidden test, an
  error raised while a test used the answer, a message with text appended -- is shown as
  a hidden check. The page never quotes test source, raw error text or grader logs.
- ``DIR/grades_by_track.csv`` -- per student, module and track: the score rescaled to 100
  on the tasks the track counts (degree: all; recurrent: core), autograded and hand graded,
  and the weighted total over the graded modules (weights from ``course/tracks.toml``).
  Hand grades come from ``DIR/gradebook.db`` (formgrader); a hand-graded task without a
  score yet counts 0, is named in ``manual_pending`` and makes the row ``provisional``.
  ``sscity course report DIR`` rewrites it after hand grading (:func:`refresh_track_grades`).
- ``DIR/report.html`` (instructors only) -- score distributions, pass rate per task, the
  most common failing checks (what students were shown, and the raw error), flagged
  submissions and why, and which isolation the grading used.
"""

from __future__ import annotations

import ast
import base64
import csv
import html
import io
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from .notebooks import grade_id, is_test_cell, visible_source, without_magics
from .tracks import load_tracks

__all__ = ["GradebookMismatch", "failure_explanation", "feedback_message", "hand_grades",
           "refresh_track_grades", "track_grades", "visible_messages", "write_feedback", "write_report",
           "write_track_grades"]

HIDDEN_LABEL = "Hidden check / 非公開のチェック"
HIDDEN = (f"{HIDDEN_LABEL}: a check failed, and its details are not shown (a hidden test, or an "
          "error raised while the test used your answer). Run the test cell yourself: if its visible "
          "checks pass, re-read the task and try your answer on other inputs. / 詳細を表示しない"
          "チェックに失敗しました（非公開のテスト、またはテストが解答を使ったときのエラー）。テストセルを"
          "自分で実行し、公開されたチェックに合格するなら、課題文を読み直して別の入力でも確かめましょう。")
# Fixed hints for a few error types: chosen by the type's exact name, never quoting the error.
_HINTS = {
    "NameError": ("a name the test uses is not defined: run your answer cell, and use exactly the "
                  "name the task asks for. / テストが使う名前が定義されていません。解答セルを実行し、"
                  "課題が指定する名前をそのまま使いましょう。"),
    "NotImplementedError": ("this task was not answered (the placeholder is still there). / "
                            "この課題は未解答です（ひな形のままです）。"),
    "KeyboardInterrupt": ("the code ran past the time limit and was stopped. / 制限時間を超えたため"
                          "停止されました。"),
    "MemoryError": "the code ran out of memory. / メモリが不足しました。",
}
NO_DETAIL = ("No points, and no result that can be shown (see the note above if your submission was "
             "flagged). / 得点はなく、表示できる結果もありません（フラグが付いた場合は上の説明を"
             "見てください）。")
_ASSERTION = "AssertionError:"


def _literal_text(node: ast.AST | None) -> str | None:
    """The text of a string literal (implicit concatenation and parentheses included);
    None for f-strings and anything computed."""
    if node is None or isinstance(node, ast.JoinedStr):
        return None
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return value.strip() if isinstance(value, str) and value.strip() else None


def visible_messages(test_cell_source: str) -> set[str]:
    """The messages of the visible asserts of a released test cell, stripped.

    Read statically: ``assert cond, "literal"`` (and ``raise AssertionError("literal")``)
    whose message is a string literal. Hidden-test regions are dropped first, in case the
    source still holds them; a cell that does not parse has no quotable message.
    """
    try:
        tree = ast.parse(without_magics(visible_source(test_cell_source)))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    found = set()
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.Assert):
            text = _literal_text(node.msg)
        elif (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
              and isinstance(node.exc.func, ast.Name) and node.exc.func.id == "AssertionError"
              and len(node.exc.args) == 1 and not node.exc.keywords):
            text = _literal_text(node.exc.args[0])
        if text:
            found.add(text)
    return found


def feedback_message(failure: str, visible: set[str]) -> str | None:
    """The message a student may read for ``failure`` (``"AssertionError: <message>"``), or None.

    Quoted only when the message is, exactly (surrounding whitespace aside), one of the
    ``visible`` messages: never a prefix, never "contains". Other errors, messages with
    text appended, and empty messages give None (shown as a hidden check).
    """
    failure = (failure or "").strip()
    if not failure.startswith(_ASSERTION):
        return None
    text = failure[len(_ASSERTION):].strip()
    if text and text in {v.strip() for v in visible}:
        return text
    return None


def failure_explanation(message: str, visible: set[str]) -> str:
    """Plain words for a failed test: the exact visible message, or words that reveal nothing."""
    if not message:
        return ""
    quoted = feedback_message(message, visible)
    if quoted is not None:
        return quoted
    ename = message.partition(":")[0].strip()
    if ename in _HINTS:
        return f"{HIDDEN_LABEL}: {_HINTS[ename]}"
    return HIDDEN


def _visible_sets(releases: dict) -> dict[str, set[str]]:
    """``notebook/grade_id`` -> the messages students can read in each released test cell."""
    messages = {}
    for name, nb in releases.items():
        for cell in nb.cells:
            if is_test_cell(cell):
                messages[f"{name[:-6]}/{grade_id(cell)}"] = visible_messages(cell.source)
    return messages


# Why a submission was flagged, in fixed words: chosen by keywords of the instructor's reason,
# never quoting it (it can hold grader logs, file names and error text).
_FLAG_NOTES = (
    ("withheld", "Its score is withheld (shown as 0) until a person has looked at it. / "
                 "確認が済むまで得点は保留（0点と表示）されます。"),
    (r"deleted|duplicated|changed from|edited|unknown graded cell",
     "Graded cells were deleted, duplicated, retyped or edited (test cells were restored before "
     "grading). / 採点対象のセルが削除・複製・種類の変更・編集されていました（テストセルは採点前に"
     "元に戻しました）。"),
    (r"renamed|missing|cannot be read",
     "A notebook was renamed, missing or could not be read. / ノートブックの名前が変わっている、"
     "見つからない、または読めませんでした。"),
    (r"time limit", "A cell ran past the time limit. / 制限時間を超えたセルがありました。"),
    (r"memory", "A cell ran out of memory. / メモリが不足したセルがありました。"),
    (r"did not run to the end|never ran|could not be graded",
     "The notebook did not run to the end when it was graded. / 採点時にノートブックが最後まで"
     "実行されませんでした。"),
)


def _flag_notes(reason: str) -> list[str]:
    return [note for pattern, note in _FLAG_NOTES if re.search(pattern, reason or "")]


_STYLE = """<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.5}
table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em;text-align:left}
.ok{color:#006d2c}.fail{color:#b30000}.warn{background:#fff3cd;padding:.5em}</style>"""


def write_feedback(out: Path, results, releases_by_module: dict) -> list[Path]:
    """One HTML page per submission under ``out/feedback/<student>/<module>.html``."""
    written = []
    visible = {m: _visible_sets(r) for m, r in releases_by_module.items()}
    for result in results:
        rows = []
        for key, task in result.tasks.items():
            if not task["auto"]:
                rows.append(f"<tr><td>{html.escape(key)}</td><td>{task['tier'] or ''}</td>"
                            f"<td>– / {task['max']:g}</td><td>graded by hand / 手動採点</td></tr>")
                continue
            status = ("<span class=ok>passed / 合格</span>" if task["passed"]
                      else "<span class=fail>not passed / 不合格</span>")
            why = "" if task["passed"] else (
                failure_explanation(task["message"], visible.get(result.module, {}).get(key, set()))
                or NO_DETAIL)
            rows.append(f"<tr><td>{html.escape(key)}</td><td>{task['tier'] or ''}</td>"
                        f"<td>{task['score']:g} / {task['max']:g}</td><td>{status}<br>"
                        f"{html.escape(why)}</td></tr>")
        flag = ""
        if result.status == "flagged":
            notes = "".join(f"<br>{html.escape(note)}" for note in _flag_notes(result.reason))
            flag = ("<p class=warn>Your submission was flagged for a person to look at; your "
                    "instructor will tell you more. / 確認のためフラグが付きました。詳しくは担当教員"
                    f"から伝えます。{notes}</p>")
        page = (f"<!doctype html><meta charset=utf-8><title>{html.escape(result.module)} feedback</title>"
                f"{_STYLE}<h1>{html.escape(result.module)} — feedback / フィードバック</h1>"
                f"<p>Student / 学生: <b>{html.escape(result.student)}</b> — autograded points / 自動採点: "
                f"<b>{result.score:g} / {result.max_score:g}</b></p>{flag}"
                "<table><tr><th>task / 課題</th><th>tier / 区分</th><th>points / 点</th>"
                "<th>result / 結果</th></tr>" + "".join(rows) + "</table>")
        path = out / "feedback" / result.student / f"{result.module}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        written.append(path)
    return written


class GradebookMismatch(ValueError):
    """The gradebook does not fit the grading run: a hand grade out of range, a student or
    task the run did not grade, or a submission missing from the gradebook."""


def hand_grades(gradebook_path: Path, results) -> dict[tuple[str, str, str], dict]:
    """What people entered in formgrader, checked against the grading run.

    Read with nbgrader's ``Gradebook`` API from ``gradebook_path``: for every graded cell
    of every submission, keyed ``(student, module, "notebook/grade_id")``, a dict with
    ``manual`` (nbgrader's ``manual_score``, or None), ``extra`` (``extra_credit``),
    ``auto`` (``auto_score``: for a hand-graded answer left as the stub, nbgrader's 0) and
    ``pending`` (formgrader's "needs manual grade": ``needs_manual_grade`` still set, or no
    score at all; formgrader clears it when a score is saved).

    Raises :class:`GradebookMismatch`, naming every problem, when a manual score is
    negative or above the task's points, when the gradebook holds a submission or a task
    the run did not grade (a student not in the class), or when a graded submission is
    missing from it: a wrong CSV is never written silently.
    """
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    tasks = {(r.student, r.module): r.tasks for r in results}
    found: dict[tuple[str, str, str], dict] = {}
    problems: list[str] = []
    seen = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        with Gradebook(f"sqlite:///{Path(gradebook_path).resolve()}") as gradebook:
            for assignment in gradebook.assignments:
                for submission in assignment.submissions:
                    student, module = submission.student.id, assignment.name
                    own = tasks.get((student, module))
                    if own is None:
                        problems.append(
                            f"{student}/{module}: in gradebook.db but not graded in this run "
                            "(results.json): a student not in the class, or work graded elsewhere. "
                            "Grade it with `sscity course grade` into this folder, or remove the "
                            "submission in formgrader.")
                        continue
                    seen.add((student, module))
                    for notebook in submission.notebooks:
                        for grade in notebook.grades:
                            key = f"{notebook.name}/{grade.name}"
                            task = own.get(key)
                            manual, extra = grade.manual_score, grade.extra_credit
                            if task is None:
                                if manual is not None or extra is not None:  # else: a cell of no points
                                    problems.append(f"{student}/{module}: {key} has a hand grade but is "
                                                    "not a task of this run (has the module changed "
                                                    "since grading?)")
                                continue
                            if manual is not None and not 0 <= manual <= task["max"] + 1e-9:
                                problems.append(f"{student}/{module}: {key} has a manual score of "
                                                f"{manual:g}, outside 0..{task['max']:g} (the task's "
                                                "points); correct it in formgrader (use extra credit "
                                                "for points above the maximum)")
                            if extra is not None and extra < 0:
                                problems.append(f"{student}/{module}: {key} has negative extra credit "
                                                f"({extra:g}); correct it in formgrader")
                            found[(student, module, key)] = {
                                "manual": manual, "extra": extra, "auto": grade.auto_score,
                                "pending": bool(grade.needs_manual_grade)
                                or (manual is None and grade.auto_score is None)}
    for missing in sorted(set(tasks) - seen):
        problems.append(f"{missing[0]}/{missing[1]}: graded in this run (results.json) but "
                        "missing from gradebook.db: was the gradebook replaced?")
    if problems:
        raise GradebookMismatch(
            f"{gradebook_path} does not fit the grading run; grades_by_track.csv was not written:\n  "
            + "\n  ".join(problems))
    return found


def track_grades(results, hand: dict | None = None) -> list[dict]:
    """Scores per student, module and track, and each track's weighted total.

    Every task the track counts is in (degree: all; recurrent: core), autograded or hand
    graded. ``hand`` (from :func:`hand_grades`) holds formgrader's scores; without it,
    or while a hand-graded task has no score, the task is *pending*: it counts 0, its id
    is listed in ``manual_pending`` and the row (and the track's total) is
    ``provisional``. A manual score formgrader put on an autograded cell overrides the
    autograder's, and extra credit is added, as in nbgrader's own totals; a score still
    marked ``needs_manual_grade`` (carried over from before the student's work changed)
    is pending, not counted. A submission whose score is withheld keeps 0 autograded
    points until a person overrides them.
    """
    tracks = load_tracks()
    hand = hand or {}
    rows = []
    by_student = defaultdict(list)
    for result in results:
        by_student[result.student].append(result)
    blank = {"auto_points": "", "manual_points": "", "max_points": ""}
    for student, own in sorted(by_student.items()):
        for track in tracks.values():
            weighted = weights = 0.0
            pending_all = []
            for result in own:
                counted = {k: t for k, t in result.tasks.items() if track.counts(t["tier"] or "core")}
                maximum = sum(t["max"] for t in counted.values())
                if not maximum:
                    continue
                withheld = "withheld" in result.reason
                auto = manual = 0.0
                pending = []
                for key, task in counted.items():
                    entry = hand.get((student, result.module, key), {})
                    if entry and not entry["pending"]:
                        manual += entry["extra"] or 0.0
                    if task["auto"]:
                        if entry.get("manual") is not None and not entry["pending"]:
                            manual += entry["manual"]
                        else:
                            if entry.get("manual") is not None:  # an override awaiting review
                                pending.append(key)
                            if not withheld:
                                auto += task["score"]
                    elif not entry or entry["pending"]:
                        pending.append(key)
                    elif entry["manual"] is not None:
                        manual += entry["manual"]
                    else:  # nbgrader scored it (an answer left as the stub: 0), nobody waits
                        auto += entry.get("auto") or 0.0
                score = 100 * (auto + manual) / maximum
                weight = track.weights.get(result.module, 0)
                weighted += weight * score
                weights += weight
                pending_all += [f"{result.module}/{key}" for key in pending]
                rows.append({"student": student, "track": track.id, "module": result.module,
                             "score_100": round(score, 2), "weight": weight,
                             "auto_points": round(auto, 6), "manual_points": round(manual, 6),
                             "max_points": maximum, "manual_pending": " ".join(pending),
                             "provisional": "yes" if pending else "no"})
            rows.append({"student": student, "track": track.id, "module": "TOTAL (graded modules)",
                         "score_100": round(weighted / weights, 2) if weights else "", "weight": weights,
                         **blank, "manual_pending": " ".join(pending_all),
                         "provisional": "yes" if pending_all else "no"})
    return rows


TRACK_COLUMNS = ("student", "track", "module", "score_100", "weight", "auto_points", "manual_points",
                 "max_points", "manual_pending", "provisional")


def write_track_grades(out: Path, results) -> Path:
    """Write ``out/grades_by_track.csv`` with the hand grades of ``out/gradebook.db``.

    Without a gradebook every hand-graded task is pending. Nothing is written when the
    gradebook does not fit the run (:class:`GradebookMismatch`).
    """
    out = Path(out)
    gradebook = out / "gradebook.db"
    path = out / "grades_by_track.csv"
    try:
        hand = hand_grades(gradebook, results) if gradebook.is_file() else {}
    except GradebookMismatch:
        path.unlink(missing_ok=True)  # an earlier CSV no longer tells the truth
        raise
    rows = track_grades(results, hand)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRACK_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    _update_pending_points(out, results, hand)
    return path


def _update_pending_points(out: Path, results, hand: dict) -> None:
    """``manual_points_pending`` of ``out/grades.csv``: the points of the hand-graded tasks
    that have no score yet (every tier); the other columns are left as graded."""
    path = out / "grades.csv"
    if not path.is_file():
        return
    pending = {}
    for result in results:
        pending[(result.student, result.module)] = sum(
            t["max"] for k, t in result.tasks.items()
            if not t["auto"] and hand.get((result.student, result.module, k), {"pending": True})["pending"])
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    if not fields or "manual_points_pending" not in fields:
        return
    for row in rows:
        key = (row["student"], row["module"])
        if key in pending:
            row["manual_points_pending"] = str(float(pending[key]))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def refresh_track_grades(out: Path) -> tuple[Path, list[dict]]:
    """After hand grading in formgrader: rewrite ``out/grades_by_track.csv`` (and the
    ``manual_points_pending`` column of ``out/grades.csv``) from the grading run's
    ``out/results.json`` and the hand grades in ``out/gradebook.db``.

    Returns the CSV's path and its rows. Nothing is graded again.
    """
    from .grade import Result

    out = Path(out)
    record = out / "results.json"
    if not record.is_file():
        raise FileNotFoundError(f"No results.json in {out}: give the --out folder of "
                                "`sscity course grade`.")
    if not (out / "gradebook.db").is_file():
        raise FileNotFoundError(f"No gradebook.db in {out}: the hand grades live there "
                                "(open the folder in formgrader).")
    payload = json.loads(record.read_text(encoding="utf-8"))
    results = [Result(**entry) for entry in payload["results"]]
    path = write_track_grades(out, results)
    with path.open(newline="", encoding="utf-8") as handle:
        return path, list(csv.DictReader(handle))


def _figure_png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(out: Path, results, releases_by_module: dict, isolation: dict) -> Path:
    """``out/report.html`` (plots embedded) and ``out/grades_by_track.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import PALETTE, use_course_style

    use_course_style()
    visible = {m: _visible_sets(r) for m, r in releases_by_module.items()}
    parts = [f"<!doctype html><meta charset=utf-8><title>Grading report</title>{_STYLE}",
             "<h1>Grading report / 採点レポート</h1>",
             "<p class=warn>For instructors only: it shows raw errors, which can quote hidden "
             "tests. Do not share it with students. / 教員専用：非公開テストを含みうるエラーを"
             "そのまま表示します。学生に共有しないでください。</p>",
             f"<p>{len(results)} submissions / 提出数. Isolation / 隔離: "
             f"<b>{html.escape(isolation['level'])}</b> — {html.escape(isolation['description'])}</p>"]
    for warning in isolation.get("warnings", []):
        parts.append(f"<p class=warn><b>{html.escape(warning)}</b></p>")
    for module in sorted({r.module for r in results}):
        own = [r for r in results if r.module == module]
        parts.append(f"<h2>{html.escape(module)}</h2>")
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist([r.score for r in own], bins=range(0, 105, 5), color=PALETTE["blue"], edgecolor="black")
        ax.set_xlabel("autograded score / 自動採点の得点")
        ax.set_ylabel("submissions / 提出数")
        parts.append(f"<img alt='Histogram of the {len(own)} scores of {module}' "
                     f"src='data:image/png;base64,{_figure_png(fig)}'>")
        parts.append(f"<p>Figure: how many submissions reached each score band (5 points wide); "
                     f"mean {sum(r.score for r in own) / len(own):.1f}. / 図：得点帯ごとの提出数。</p>")
        tasks = sorted({k for r in own for k, t in r.tasks.items() if t["auto"]})
        rates = {k: sum(r.tasks[k]["passed"] for r in own) / len(own) for k in tasks}
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(tasks) + 1))
        ax.barh(tasks, [100 * rates[k] for k in tasks], color=PALETTE["bluish_green"], edgecolor="black")
        for y, k in enumerate(tasks):
            ax.text(100 * rates[k] + 1, y, f"{100 * rates[k]:.0f} %", va="center")
        ax.set_xlim(0, 110)
        ax.set_xlabel("passed / 合格した提出の割合 (%)")
        parts.append(f"<img alt='Pass rate per task of {module}' "
                     f"src='data:image/png;base64,{_figure_png(fig)}'>")
        parts.append("<p>Figure: share of submissions passing each autograded task, labelled in percent. "
                     "/ 図：課題ごとの合格率（%）。</p>")
        parts.append("<h3>Item analysis / 項目分析</h3><table><tr><th>task</th><th>tier</th>"
                     "<th>pass rate</th><th>mean points</th></tr>")
        for k in tasks:
            mean = sum(r.tasks[k]["score"] for r in own) / len(own)
            tier = next(r.tasks[k]["tier"] for r in own)
            parts.append(f"<tr><td>{html.escape(k)}</td><td>{tier}</td><td>{100 * rates[k]:.0f} %</td>"
                         f"<td>{mean:.1f} / {own[0].tasks[k]['max']:g}</td></tr>")
        parts.append("</table>")
        failing = Counter()
        for r in own:
            for k, t in r.tasks.items():
                if t["auto"] and not t["passed"] and t["message"]:
                    quoted = feedback_message(t["message"], visible.get(module, {}).get(k, set()))
                    shown = quoted[:160] if quoted is not None else HIDDEN_LABEL
                    failing[(k, shown, t["message"].strip()[:160])] += 1
        parts.append("<h3>Most common failing checks / よくある不合格の原因</h3><table>"
                     "<tr><th>task</th><th>shown to students / 学生への表示</th>"
                     "<th>raw error (instructors only) / エラー（教員のみ）</th><th>submissions</th></tr>")
        for (k, shown, raw), count in failing.most_common(10):
            parts.append(f"<tr><td>{html.escape(k)}</td><td>{html.escape(shown)}</td>"
                         f"<td>{html.escape(raw)}</td><td>{count}</td></tr>")
        parts.append("</table>")
    flagged = [r for r in results if r.status == "flagged"]
    parts.append(f"<h2>Flagged submissions / フラグ付きの提出 ({len(flagged)})</h2><table>"
                 "<tr><th>student</th><th>module</th><th>score</th><th>reason</th></tr>")
    for r in flagged:
        parts.append(f"<tr><td>{html.escape(r.student)}</td><td>{html.escape(r.module)}</td>"
                     f"<td>{r.score:g}</td><td>{html.escape(r.reason)}</td></tr>")
    parts.append("</table>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    write_track_grades(out, results)
    return path
