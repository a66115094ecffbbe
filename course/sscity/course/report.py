"""What grading gives back: feedback for each student, grades per track, and a report for
the instructor.

- ``DIR/feedback/<student>/<module>.html`` -- points per task and, for each failed task,
  the reason in plain words (English and Japanese). The message of a *visible* test is
  shown as written; a failed *hidden* test is never quoted, only described.
- ``DIR/grades_by_track.csv`` -- per student, module and track: the score rescaled to 100
  on the tasks the track counts (degree: all; recurrent: core), and the weighted total
  over the graded modules (weights from ``course/tracks.toml``).
- ``DIR/report.html`` -- score distributions, pass rate per task, the most common failing
  checks, flagged submissions and why, and which isolation the grading used.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter, defaultdict
from pathlib import Path

from .notebooks import grade_id, is_test_cell, visible_source
from .tracks import load_tracks

__all__ = ["failure_explanation", "track_grades", "write_feedback", "write_report"]

HIDDEN = ("A hidden check failed: your answer passes the visible tests but not every case the grader "
          "tries. Re-read the task and try your answer on other inputs. / 非公開のチェックに失敗しました。"
          "公開テストには合格していますが、採点で試すすべての場合には合っていません。課題文を読み直し、"
          "別の入力でも確かめましょう。")
_EXPLAIN = {
    "NameError": ("A name the test uses is not defined: run your answer cell, and use exactly the name "
                  "the task asks for. / テストが使う名前が定義されていません。"
                  "解答セルを実行し、課題が指定する名前をそのまま使いましょう。"),
    "NotImplementedError": ("This task was not answered (the placeholder is still there). / "
                            "この課題は未解答です（ひな形のままです）。"),
    "KeyboardInterrupt": ("The code ran past the time limit and was stopped. / 制限時間を超えたため"
                          "停止されました。"),
    "MemoryError": "The code ran out of memory. / メモリが不足しました。",
}
_GENERIC = ("Your answer raised {ename} when the test used it: run the test cell yourself to see "
            "where. / テストが解答を使ったときに {ename} が発生しました。テストセルを自分で実行して"
            "場所を確かめましょう。")


def failure_explanation(message: str, visible_text: str) -> str:
    """Plain words for a failed test: the visible message, or a description that reveals nothing."""
    if not message:
        return ""
    ename, _, evalue = message.partition(": ")
    if ename == "AssertionError":
        shown = evalue.strip()
        if shown and shown[:40] in visible_text:
            return shown
        return HIDDEN
    return _EXPLAIN.get(ename, _GENERIC.format(ename=ename))


def _visible_texts(releases: dict) -> dict[str, str]:
    """``notebook/grade_id`` -> what students can read of each test cell."""
    texts = {}
    for name, nb in releases.items():
        for cell in nb.cells:
            if is_test_cell(cell):
                texts[f"{name[:-6]}/{grade_id(cell)}"] = visible_source(cell.source)
    return texts


_STYLE = """<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.5}
table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em;text-align:left}
.ok{color:#006d2c}.fail{color:#b30000}.warn{background:#fff3cd;padding:.5em}</style>"""


def write_feedback(out: Path, results, releases_by_module: dict) -> list[Path]:
    """One HTML page per submission under ``out/feedback/<student>/<module>.html``."""
    written = []
    visible = {m: _visible_texts(r) for m, r in releases_by_module.items()}
    for result in results:
        rows = []
        for key, task in result.tasks.items():
            if not task["auto"]:
                rows.append(f"<tr><td>{html.escape(key)}</td><td>{task['tier'] or ''}</td>"
                            f"<td>– / {task['max']:g}</td><td>graded by hand / 手動採点</td></tr>")
                continue
            status = ("<span class=ok>passed / 合格</span>" if task["passed"]
                      else "<span class=fail>not passed / 不合格</span>")
            why = "" if task["passed"] else failure_explanation(task["message"],
                                                                 visible[result.module].get(key, ""))
            rows.append(f"<tr><td>{html.escape(key)}</td><td>{task['tier'] or ''}</td>"
                        f"<td>{task['score']:g} / {task['max']:g}</td><td>{status}<br>"
                        f"{html.escape(why)}</td></tr>")
        flag = ""
        if result.status == "flagged":
            flag = (f"<p class=warn>Your submission was flagged for a person to look at / 確認のため"
                    f"フラグが付きました: {html.escape(result.reason)}</p>")
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


def track_grades(results) -> list[dict]:
    """Scores per student, module and track, and each track's weighted total."""
    tracks = load_tracks()
    rows = []
    by_student = defaultdict(list)
    for result in results:
        by_student[result.student].append(result)
    for student, own in sorted(by_student.items()):
        for track in tracks.values():
            weighted = weights = 0.0
            for result in own:
                counted = [t for t in result.tasks.values()
                           if t["auto"] and track.counts(t["tier"] or "core")]
                maximum = sum(t["max"] for t in counted)
                if not maximum:
                    continue
                earned = 0.0 if "withheld" in result.reason else sum(t["score"] for t in counted)
                score = 100 * earned / maximum
                weight = track.weights.get(result.module, 0)
                weighted += weight * score
                weights += weight
                rows.append({"student": student, "track": track.id, "module": result.module,
                             "score_100": round(score, 2), "weight": weight})
            rows.append({"student": student, "track": track.id, "module": "TOTAL (graded modules)",
                         "score_100": round(weighted / weights, 2) if weights else "", "weight": weights})
    return rows


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
    rows = track_grades(results)
    with (out / "grades_by_track.csv").open("w", newline="", encoding="utf-8") as handle:
        fields = ["student", "track", "module", "score_100", "weight"]
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    visible = {m: _visible_texts(r) for m, r in releases_by_module.items()}
    parts = [f"<!doctype html><meta charset=utf-8><title>Grading report</title>{_STYLE}",
             "<h1>Grading report / 採点レポート</h1>",
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
                    text = failure_explanation(t["message"], visible[module].get(k, ""))
                    failing[(k, "hidden check / 非公開のチェック" if text == HIDDEN else text[:160])] += 1
        parts.append("<h3>Most common failing checks / よくある不合格の原因</h3><table>"
                     "<tr><th>task</th><th>check</th><th>submissions</th></tr>")
        for (k, text), count in failing.most_common(10):
            parts.append(f"<tr><td>{html.escape(k)}</td><td>{html.escape(text)}</td><td>{count}</td></tr>")
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
    return path
