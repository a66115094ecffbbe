"""The two set-up routes (pip and conda) install the same things; the entry points exist."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_sscity


def _normalise(requirement: str) -> str:
    name, _, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", requirement.strip()).group(1, 2, 2)
    spec = re.sub(r"\s+", "", spec)
    return re.sub(r"[-_.]+", "-", name).lower() + spec


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = set(), set()
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip |= {_normalise(r) for r in entry["pip"] if not r.startswith("-e")}
        elif not re.match(r"(python|pip)\b(?!-)", entry):
            conda.add(_normalise(entry.replace("=", "==", 1) if re.search(r"[^<>=!]=[^=]", entry)
                                 else entry))
    listed = conda | pip
    assert listed == wanted, (
        f"environment.yml and pyproject.toml differ. Only in environment.yml: "
        f"{sorted(listed - wanted)}; only in pyproject.toml: {sorted(wanted - listed)}"
    )
    assert "-e ." in next(e for e in env["dependencies"] if isinstance(e, dict))["pip"]
    assert "python=3.11" in env["dependencies"]
    assert env["channels"] == ["conda-forge"]


def test_readme_shows_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:60])
    assert "make demo" in first_screen and "make test" in first_screen
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo:", "test:", "test-fast:", "lab:"):
        assert f"\n{target}" in makefile, f"Makefile lacks the {target} target"


def test_nbgrader_config_points_at_solutions_and_modules():
    config = (ROOT / "nbgrader_config.py").read_text()
    assert 'source_directory = "solutions"' in config
    assert 'release_directory = "modules"' in config
    assert "known-wrong.toml" in config  # authors' wrong answers are never released
    ignored = (ROOT / ".gitignore").read_text()
    for folder in ("/submitted/", "/autograded/", "/feedback/", "gradebook.db"):
        assert folder in ignored


def test_sscity_command_lists_its_verbs():
    done = run_sscity("--help")
    assert done.returncode == 0
    for verb in ("course", "data", "lab"):
        assert verb in done.stdout
    done = run_sscity("course", "--help")
    for verb in ("release", "verify", "lint"):
        assert verb in done.stdout


def test_unknown_module_gets_a_clear_error():
    done = run_sscity("course", "release", "99-nonexistent", "--check")
    assert done.returncode == 2
    assert "No module 99-nonexistent" in done.stderr


def _processes_in_group(group: int) -> list[int]:
    """Live processes of the process group ``group`` (Linux /proc), zombies excluded."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_sscity_lab_serves_jupyterlab_on_modules(tmp_path):
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path))
    server = subprocess.Popen(
        [sys.executable, "-m", "sscity", "lab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password="],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5) as r:
                    listing = json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        names = {item["name"] for item in listing["content"]}
        assert "00-orientation" in names  # the server's root is modules/
        assert "solutions" not in names
    finally:
        server.terminate()  # `sscity lab` has become JupyterLab: this stops the server itself
        server.wait(timeout=30)
        time.sleep(0.5)
        leftovers = _processes_in_group(server.pid)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"`sscity lab` left JupyterLab processes running: {leftovers}"
