"""The course's datasets: the 2019 survey reproduces the published figures exactly, the
synthetic data carry the structure the lessons rely on, and every synthetic file is rebuilt
byte for byte from its seed."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, run_sscity
from shapely.geometry import Point
from sscity.data import (
    dataset_path,
    load_districts,
    load_mailed_sample,
    load_register,
    load_stations,
    load_survey,
    verify_manifest,
)
from sscity.data.build import GENERATED


def test_2019_reproduces_the_published_figures_from_the_csv_alone():
    df = pd.read_csv(dataset_path("happiness-survey", "happiness_2019.csv"))
    assert len(df) == 1481
    assert round(df["happiness"].mean(), 2) == 6.94
    assert (df["happiness"] >= 6).sum() == 1069
    assert round(100 * (df["happiness"] >= 6).mean(), 1) == 72.2
    counts = df[["weigh_health", "weigh_family", "weigh_finances", "weigh_leeway"]].sum()
    assert counts.tolist() == [1066, 741, 584, 543]
    assert df["happiness"].between(0, 10).all() and df["happiness"].dtype.kind == "i"


def test_the_published_four_stay_the_most_weighed_options():
    df = load_survey(2019)
    weigh = df.filter(like="weigh_").sum().sort_values(ascending=False)
    assert list(weigh.index[:4]) == ["weigh_health", "weigh_family", "weigh_finances", "weigh_leeway"]
    assert len(weigh) >= 8


def test_every_synthetic_file_is_rebuilt_byte_for_byte(tmp_path):
    copy = tmp_path / "datasets"
    shutil.copytree(ROOT / "datasets", copy)
    for generated in GENERATED:
        for name in generated.files:
            (copy / generated.folder / name).unlink()
    done = run_sscity("data", "build", "--datasets", str(copy), "--no-progress")
    assert done.returncode == 0, done.stderr
    report = verify_manifest(copy)
    assert report.ok, "\n".join(report.lines())


def test_respondents_and_mailed_sample_agree():
    respondents, mailed = load_survey(2019), load_mailed_sample()
    assert len(mailed) == 2700 and mailed["responded"].sum() == 1481
    merged = mailed[mailed["responded"] == 1].merge(respondents, on="respondent_id",
                                                      suffixes=("_m", ""))
    assert len(merged) == 1481
    for column in ("district_code", "age_group", "sex", "design_weight"):
        assert (merged[f"{column}_m"].astype(str) == merged[column].astype(str)).all(), column
    assert mailed.loc[mailed["responded"] == 0, "respondent_id"].isna().all()


def test_design_weights_are_register_total_over_mailed_count():
    register, mailed = load_register(), load_mailed_sample()
    population = register.groupby("district_code", observed=True)["population"].sum()
    mailed_per = mailed.groupby("district_code", observed=True).size()
    weights = mailed.groupby("district_code", observed=True)["design_weight"].first()
    assert np.allclose(weights, (population / mailed_per).round(4))
    assert (mailed_per == 450).all()


def test_happiness_has_structure_not_noise():
    df = load_survey(2019)
    by_health = df.groupby("self_rated_health")["happiness"].mean()
    assert by_health.is_monotonic_decreasing and by_health[1] - by_health[5] > 2
    by_household = df.groupby("household")["happiness"].mean()
    assert by_household["single"] < by_household["couple_with_children"] - 0.5
    centre = df["district_code"].isin(["sakura", "yatabe"])
    assert df.loc[centre, "happiness"].mean() > df.loc[~centre, "happiness"].mean() + 0.4


def test_older_peripheral_residents_answer_less_so_weights_matter():
    mailed = load_mailed_sample()
    old = mailed["age_group"].isin(["70-79", "80+"])
    periphery = ~mailed["district_code"].isin(["sakura", "yatabe"])
    rate = mailed.groupby([old, periphery])["responded"].mean()
    assert rate[(True, True)] < rate[(True, False)] - 0.1
    assert rate[(True, True)] < mailed["responded"].mean() - 0.1

    df = load_survey(2019)
    weighted = np.average(df["happiness"], weights=df["design_weight"])
    assert abs(weighted - df["happiness"].mean()) > 0.1  # equal allocation over-samples the periphery


def test_waves_differ_plausibly():
    means = {wave: load_survey(wave)["happiness"].mean() for wave in (2015, 2017, 2019)}
    assert means[2015] < means[2017] < means[2019]
    assert means[2019] - means[2015] < 0.4
    sizes = {wave: len(load_survey(wave)) for wave in (2015, 2017, 2019)}
    assert sizes == {2015: 1352, 2017: 1418, 2019: 1481}


def test_register_is_consistent_with_the_city():
    register = load_register()
    assert len(register) == 6 * 7 * 2
    assert 185_000 < register["population"].sum() < 192_000  # adults 20+ of ~240,000
    by_district = register.groupby("district_code", observed=True)["population"].sum()
    assert by_district.idxmax() == "yatabe"
    old = register[register["age_group"].isin(["70-79", "80+"])]
    old_share = old.groupby("district_code", observed=True)["population"].sum() / by_district
    assert old_share[["tsukuba", "kukizaki"]].min() > old_share[["sakura", "yatabe"]].max()


def test_districts_partition_the_city_in_the_right_order():
    districts = load_districts()
    assert districts.crs.to_epsg() == 4326 and len(districts) == 6
    assert districts.geometry.is_valid.all()
    for a, b in itertools.combinations(districts.geometry, 2):
        assert a.intersection(b).area < 1e-9
    centroids = districts.to_crs(6677).geometry.centroid.y
    assert districts.loc[centroids.idxmax(), "district_code"] == "tsukuba"
    assert districts.loc[centroids.idxmin(), "district_code"] == "kukizaki"
    where = {code: geom for code, geom in zip(districts["district_code"], districts.geometry, strict=True)}
    for station, geometry in zip(load_stations()["station_id"], load_stations().geometry, strict=True):
        expected = "sakura" if station == "tsukuba" else "yatabe"
        assert where[expected].contains(geometry), station
    assert where["sakura"].contains(Point(140.10, 36.11))  # the campus


def test_loaders_give_clear_errors():
    with pytest.raises(ValueError, match="waves are"):
        load_survey(2018)
