"""sscity.data: datasets resolved through the installed package; checksums verified."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, run_sscity
from sscity import data


def test_datasets_dir_is_the_repository_folder():
    assert data.datasets_dir() == ROOT / "datasets"


def test_dataset_path_works_from_any_working_directory(tmp_path):
    # nbgrader runs submissions in autograded/<student>/<module>/: no ../datasets there.
    code = "from sscity.data import dataset_path; print(dataset_path('tsukuba-geo', 'tx_stations.csv'))"
    env = {k: v for k, v in os.environ.items() if k != data.ENV_VAR}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=env, check=True)
    assert done.stdout.strip() == str(ROOT / "datasets" / "tsukuba-geo" / "tx_stations.csv")


def test_environment_variable_overrides_the_folder(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.csv").write_text("x\n1\n")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data.dataset_path("mine", "a.csv") == tmp_path / "mine" / "a.csv"
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(data.DatasetError, match="not a folder"):
        data.datasets_dir()


def test_missing_file_error_lists_what_is_there():
    with pytest.raises(data.DatasetError, match="tx_stations.csv"):
        data.dataset_path("tsukuba-geo", "stations.csv")
    with pytest.raises(data.DatasetError, match="Datasets available: .*tsukuba-geo"):
        data.dataset_path("no-such-dataset", "x.csv")
    with pytest.raises(ValueError, match="outside datasets"):
        data.dataset_path("..", "pyproject.toml")


def test_every_dataset_file_matches_the_manifest():
    report = data.verify_manifest()
    assert report.ok, "\n".join(report.lines())
    assert report.checked >= 6


def test_every_dataset_folder_has_a_datasheet():
    for folder in (ROOT / "datasets").iterdir():
        if folder.is_dir():
            sheet = folder / "README.md"
            assert sheet.is_file(), f"{folder.name} has no README.md datasheet"
            text = sheet.read_text()
            assert re.search(r"\b(real|synthetic)\b", text, re.I), f"{sheet} must say real or synthetic"


def test_verify_names_changed_missing_and_unlisted_files(tmp_path):
    copy = tmp_path / "datasets"
    shutil.copytree(ROOT / "datasets", copy)
    (copy / "tsukuba-geo" / "tx_stations.csv").write_text("tampered\n")
    (copy / "qol-published" / "weigh_factors_2019.csv").unlink()
    (copy / "qol-published" / "stray.csv").write_text("x\n")

    report = data.verify_manifest(copy)
    assert report.changed == ["tsukuba-geo/tx_stations.csv"]
    assert report.missing == ["qol-published/weigh_factors_2019.csv"]
    assert report.unlisted == ["qol-published/stray.csv"]

    done = run_sscity("data", "verify", "--datasets", str(copy))
    assert done.returncode == 1
    for name in ("tx_stations.csv", "weigh_factors_2019.csv", "stray.csv"):
        assert name in done.stdout
    assert run_sscity("data", "verify").returncode == 0


def test_malformed_manifest_says_how_to_fix(tmp_path):
    (tmp_path / "MANIFEST").write_text("not a checksum line\n")
    with pytest.raises(data.DatasetError, match="sscity data manifest"):
        data.read_manifest(tmp_path)

