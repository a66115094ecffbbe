"""Landlock confinement, checked by the kernel itself: a confined fork reads and writes
only what it was given. And the warm checker's forks, one per notebook, cannot see each
other's folders even though they share a sandbox."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT
from sscity.course import landlock
from sscity.course.sandbox import isolation

pytestmark = pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock")


def _in_fork(function) -> int:
    """Run ``function`` in a fork; its exit code (0 when it returned True)."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if function() else 3)
        except BaseException:  # noqa: BLE001
            os._exit(4)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_confined_process_reaches_only_what_it_was_given(tmp_path):
    given, other = tmp_path / "given", tmp_path / "other"
    given.mkdir()
    other.mkdir()
    (other / "secret.txt").write_text("another student's work")
    python = [Path(p) for p in {os.path.realpath(os.sys.prefix), os.path.realpath(os.sys.base_prefix)}]

    def confined():
        landlock.restrict([Path("/usr"), *python], [given], [Path("/dev")])
        (given / "mine.txt").write_text("ok")
        denied = 0
        for attempt in (lambda: (other / "secret.txt").read_text(),
                        lambda: (other / "new.txt").write_text("x"),
                        lambda: os.listdir(other),
                        lambda: (given / "mine.txt").rename(other / "moved.txt"),
                        lambda: Path("/etc/hostname").read_text()):
            try:
                attempt()
            except PermissionError:
                denied += 1
        return denied == 5 and (given / "mine.txt").read_text() == "ok"

    assert _in_fork(confined) == 0
    assert not (other / "new.txt").exists() and not (other / "moved.txt").exists()


def test_a_confined_process_cannot_signal_outside(tmp_path):
    if landlock.abi_version() < 6:
        pytest.skip("signal scoping needs Landlock ABI 6")
    parent = os.getpid()

    def confined():
        landlock.restrict([Path("/usr")], [], [])
        try:
            os.kill(parent, 0)
        except PermissionError:
            return True
        return False

    assert _in_fork(confined) == 0


@pytest.mark.skipif(not isolation().isolated, reason="bubblewrap is not available")
def test_warm_checker_forks_see_only_their_own_notebook(tmp_path):
    from sscity.course.trusted import NotebookRun, WarmChecker

    scratch = Path(tempfile.mkdtemp(dir=tmp_path))
    settings = {"course_root": str(ROOT), "scratch": str(scratch), "sandbox": True}
    warm = WarmChecker(settings, "import json")
    try:
        assert warm.alive(), "the warm checker did not start (or found no Landlock in its sandbox)"
        first, second = NotebookRun(settings, warm=warm), NotebookRun(settings, warm=warm)
        with first, second:
            (second.work / "answers.txt").write_text("the other student's answers")
            (first.work / "answers.txt").write_text("my own answers")
            (scratch / "kernel-failures.jsonl").write_text("{}\n")
            first.start_checker()
            assert first.checker is not None and type(first.checker).__name__ == "_Fork"
            others = (str(second.work / "answers.txt"), str(ROOT / "README.md"),
                      str(scratch / "kernel-failures.jsonl"))
            probe = (
                "import os\n"
                "print(open('answers.txt').read())\n"
                f"for path in {others!r}:\n"
                "    try:\n"
                "        open(path).read(); print('READ', path)\n"
                "    except OSError as err:\n"
                "        print('denied', type(err).__name__)\n"
                f"open(os.path.join({str(first.tmp)!r}, 'note'), 'w').write('tmp is writable')\n"
            )
            outputs = first.run_checker("test", probe)
            text = "".join(o.get("text", "") for o in outputs)
            assert "my own answers" in text, outputs
            assert "READ" not in text, text
            assert text.count("denied") == 3, text
            assert (first.tmp / "note").read_text() == "tmp is writable"
    finally:
        warm.close()
