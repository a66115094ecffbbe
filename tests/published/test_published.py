"""Smoke test of the student edition made by ``sscity course publish``.

Runs inside the published copy (it is copied there as ``tests/test_published.py``): the
copy holds no solutions and no hidden tests, its datasets match their manifest, every
lesson and the primer run top to bottom, and every assignment runs with only the expected errors (the
unanswered placeholders and the tests that need them); and the README's two commands
(``make setup``, ``make lab``) work from a fresh ``git clone`` of the edition, where JupyterLab
shows students no instructor tools.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import free_port, http_get
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((HERE / "modules").glob("*/*.ipynb"))
EXPECTED_IN_BLANK = {"NotImplementedError", "NameError", "AssertionError", "TypeError",
                     "AttributeError", "KeyError", "ValueError"}


def test_no_solutions_hidden_tests_or_wrong_answers_are_published():
    assert not (HERE / "solutions").exists()
    assert not list(HERE.rglob("known-wrong.toml"))
    for path in HERE.rglob("*.ipynb"):
        text = path.read_text(encoding="utf-8")
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "MARK SCHEME"):
            assert marker not in text, f"{path} contains {marker}"


def test_datasets_match_their_manifest():
    from sscity.data import verify_manifest

    report = verify_manifest(HERE / "datasets")
    assert report.ok, "\n".join(report.lines())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_released_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [(i, o["ename"]) for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    if path.stem != "assignment":  # lessons and the primer run without errors
        assert not errors, errors
    else:
        unexpected = [e for e in errors if e[1] not in EXPECTED_IN_BLANK]
        assert not unexpected, unexpected


def _page_config(html: str) -> dict:
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      html, re.S)
    assert found, "no page config in JupyterLab's page"
    return json.loads(found.group(1))


def test_the_readme_commands_work_from_a_fresh_clone(tmp_path):
    """The instructor commits the edition; a student clones it and runs the README's two
    commands. To stay fast and offline, the active environment (``VIRTUAL_ENV``, which the
    Makefile uses as it is) is a new virtualenv that sees this interpreter's packages through
    a ``.pth`` file: ``make setup`` then really installs the clone (pip finds every
    dependency already there and downloads only the build backend), and ``make lab`` really
    serves it."""
    from sscity.course.publish import readme_commands

    commands = readme_commands((HERE / "README.md").read_text(encoding="utf-8"))
    assert commands == ["make setup", "make lab"], commands
    for tool in ("git", "make"):
        assert shutil.which(tool), f"{tool} is needed to try the README's commands"
    origin, clone, env_dir = tmp_path / "origin", tmp_path / "clone", tmp_path / "env"
    shutil.copytree(HERE, origin, ignore=shutil.ignore_patterns(
        ".venv", ".make", "__pycache__", ".pytest_cache", "*.egg-info", ".ipynb_checkpoints"))
    git = ["git", "-c", "user.name=Instructor", "-c", "user.email=instructor@example.org",
           "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "student edition"]):
        subprocess.run([*git, *args], cwd=origin, check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True, capture_output=True)
    assert not (clone / "solutions").exists() and (clone / ".sscity-edition").is_file()

    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, capture_output=True)
    purelib = subprocess.run([env_dir / "bin" / "python", "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "_outer_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # A student's fresh shell: no course settings, and not inside the `make test` that may have
    # started this run (its MAKELEVEL/MAKEFLAGS would make `make -n` print "Entering directory").
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SSCITY_DATASETS", "CONDA_PREFIX", "CONDA_DEFAULT_ENV",
                        "MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    # pip fetches only what the build needs (setuptools, wheel) and pip itself from the
    # package index: every dependency is already there.
    env.update(VIRTUAL_ENV=str(env_dir), PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}",
               PIP_DISABLE_PIP_VERSION_CHECK="1")

    setup = subprocess.run(commands[0].split(), cwd=clone, env=env, capture_output=True,
                           text=True, timeout=600)
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-3000:]
    assert not (clone / ".venv").exists()  # the active environment was used
    where = subprocess.run(["python", "-c", "import sscity; print(sscity.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert str(clone) in where, f"make setup did not install the clone: sscity is {where}"
    assert "- -e ." in (clone / "environment.yml").read_text()  # installs the clone itself
    # The conda route (environment.yml, then `conda activate sscity`): the same Makefile
    # takes the active conda environment as it is -- set up, no .venv, `make lab` runs there.
    conda = {k: v for k, v in env.items() if k != "VIRTUAL_ENV"}
    conda.update(CONDA_PREFIX=str(env_dir), CONDA_DEFAULT_ENV="sscity")
    assert subprocess.run(["make", "-q", "setup"], cwd=clone, env=conda).returncode == 0
    dry = subprocess.run(["make", "-n", "lab"], cwd=clone, env=conda, capture_output=True, text=True)
    assert dry.stdout.strip().startswith("python -m sscity lab"), dry.stdout

    port, token = free_port(), "edition-smoke-test"
    lab = subprocess.Popen([*commands[1].split(), f"PORT={port}",
                            f"LAB_ARGS=--no-browser --token {token}"], cwd=clone, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, body = http_get(f"{base}/api/status", token)
            except OSError:
                status = None
            if status == 200:
                break
            assert lab.poll() is None, f"make lab stopped:\n{lab.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "JupyterLab did not answer /api/status in 120 s"
            time.sleep(0.5)
        status, listing = http_get(f"{base}/api/contents", token)
        names = {item["name"] for item in json.loads(listing)["content"]}
        assert "00-orientation" in names, names  # the server's root is the clone's modules/
        status, html = http_get(f"{base}/lab", token)
        disabled = _page_config(html).get("disabledExtensions", [])
        for plugin in ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                       "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list"):
            assert plugin in disabled, f"students see {plugin}: disabled only {disabled}"
        assert "@jupyter/nbgrader:validate-assignment" not in disabled  # Validate stays
        for path in ("/formgrader", "/formgraders", "/assignments", "/courses"):
            assert http_get(base + path, token)[0] == 404, f"{path} is served to students"
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait()
