"""Module 00: the numbers its prose quotes from data are what the code computes.

Each case quotes the exact phrase of a lesson, assignment or README cell and recomputes the
number with the course's own data and helpers (see ``tests/prose_facts.py``). Real-world
figures that come from sources, not data, are listed in the module README's facts table.
"""

from __future__ import annotations

import pandas as pd
import pytest
from prose_facts import check_quoted
from pyproj import Transformer
from sscity.course.tracks import course_map, load_tracks
from sscity.data import dataset_path, load_stations, load_survey

MODULE = "00-orientation"


def _headline() -> pd.Series:
    table = pd.read_csv(dataset_path("qol-published", "happiness_2019_headline.csv"))
    return table.set_index("measure")["value"]


def _counts() -> pd.Series:
    factors = pd.read_csv(dataset_path("qol-published", "weigh_factors_2019.csv"))
    return factors.set_index("factor_id")["respondents"]


def _respondents() -> int:
    return int(_headline()["respondents"])


def _degree_km() -> tuple[float, float]:
    """Length of one degree of longitude and of latitude at Tsukuba, in km (lesson cell)."""
    to_m = Transformer.from_crs("EPSG:4326", "EPSG:6677", always_xy=True)
    lon0, lat0 = 140.08, 36.06
    x0, y0 = to_m.transform(lon0, lat0)
    xe, ye = to_m.transform(lon0 + 0.01, lat0)
    xn, yn = to_m.transform(lon0, lat0 + 0.01)
    return (((xe - x0) ** 2 + (ye - y0) ** 2) ** 0.5 / 10, ((xn - x0) ** 2 + (yn - y0) ** 2) ** 0.5 / 10)


def _district_means():
    survey = load_survey(2019)
    return survey.groupby("district_code", observed=True)["happiness"].mean()


def _happy_counts() -> list[int]:
    """Whole numbers k with k / n = 72.2 % after rounding to one decimal."""
    n, share = _respondents(), float(_headline()["happy_share"])
    return [k for k in range(n + 1) if round(100 * k / n, 1) == share]


CASES = [
    # lesson, section 6: the published headline figures
    ("So **n = 1,481** residents answered", "1,481", lambda: _respondents(), False),
    ("the **mean was 6.94**", "6.94", lambda: float(_headline()["mean_happiness"]), False),
    ("**72.2 %** answered 6–10", "72.2", lambda: float(_headline()["happy_share"]), False),
    # lesson: % of respondents or % of mentions
    ("the four counts add up to **2,934 mentions**", "2,934", lambda: float(_counts().sum()), False),
    ("\"72.0 % chose health\"", "72.0", lambda: _counts()["health"] / _respondents(), True),
    ("(36.3 % for health)", "36.3", lambda: _counts()["health"] / _counts().sum(), True),
    ("延べ2,934件", "2,934", lambda: float(_counts().sum()), False),
    # lesson: figure description of the factors
    ("health 72.0 % (1,066)", "72.0", lambda: _counts()["health"] / _respondents(), True),
    ("health 72.0 % (1,066)", "1,066", lambda: float(_counts()["health"]), False),
    ("family relations 50.0 % (741)", "50.0", lambda: _counts()["family"] / _respondents(), True),
    ("family relations 50.0 % (741)", "741", lambda: float(_counts()["family"]), False),
    ("household finances 39.4 % (584)", "39.4", lambda: _counts()["finances"] / _respondents(), True),
    ("household finances 39.4 % (584)", "584", lambda: float(_counts()["finances"]), False),
    ("mental leeway 36.7 % (543)", "36.7", lambda: _counts()["leeway"] / _respondents(), True),
    ("mental leeway 36.7 % (543)", "543", lambda: float(_counts()["leeway"]), False),
    ("as a percentage of the 1,481 respondents", "1,481", lambda: _respondents(), False),
    # lesson: degrees are not lengths
    ("here one degree of longitude is about 90 km", "90", lambda: _degree_km()[0], False),
    ("but one degree of latitude is about 111 km", "111", lambda: _degree_km()[1], False),
    # lesson: the course map figure
    ("from 2 h for this orientation to 6 h for the capstone", "2",
     lambda: float(course_map().set_index("module").loc[MODULE, "hours"]), False),
    ("from 2 h for this orientation to 6 h for the capstone", "6",
     lambda: float(course_map()["hours"].iloc[-1]), False),
    # README: weights and headline figures
    ("Module 00 weighs 5 % of the final grade in the degree track",
     "5", lambda: float(load_tracks()["degree"].weights[MODULE]), False),
    ("and 10 % in the recurrent track", "10",
     lambda: float(load_tracks()["recurrent"].weights[MODULE]), False),
    ("(n = 1,481, mean 6.94, 72.2 % happy,", "6.94", lambda: float(_headline()["mean_happiness"]), False),
    # primer: the synthetic survey (calibrated to the published mean) and its figure
    ("so the mean is the published 6.94", "6.94",
     lambda: float(load_survey(2019)["happiness"].mean()), False),
    ("range from 6.42 in Kukizaki", "6.42", lambda: float(_district_means()["kukizaki"]), False),
    ("to 7.35 in Sakura", "7.35", lambda: float(_district_means()["sakura"]), False),
    # assignment task 5 (mark scheme) and the README's facts table: the unpublished count
    ("1,069 / 1,481 = 72.18 %", "72.18", lambda: 1069 / _respondents(), True),
    ("1,070 / 1,481 = 72.25 %", "72.25", lambda: 1070 / _respondents(), True),
    ("| 1,069 or 1,070 |", "1,069", lambda: float(min(_happy_counts())), False),
    ("| 1,069 or 1,070 |", "1,070", lambda: float(max(_happy_counts())), False),
]


@pytest.mark.parametrize(("quote", "number", "compute", "percent"), CASES,
                         ids=[f"{q[:40]}|{n}" for q, n, _, _ in CASES])
def test_quoted_number_matches_the_computation(quote, number, compute, percent):
    check_quoted(MODULE, quote, number, compute(), percent=percent)


def test_the_primer_names_the_lowest_and_highest_district():
    means = _district_means()
    assert (means.idxmin(), means.idxmax()) == ("kukizaki", "sakura")


def test_only_two_counts_round_to_the_published_share():
    assert _happy_counts() == [1069, 1070]


def test_the_tx_line_is_longer_than_the_straight_line_between_its_ends():
    """Lesson figure: 'its length is longer than the straight distance between its two ends';
    task 3's visible message: the ends are 'a little under 8 km' apart."""
    stations = load_stations().to_crs(epsg=6677)
    ends_km = stations.geometry.iloc[0].distance(stations.geometry.iloc[-1]) / 1000
    path_km = sum(a.distance(b) for a, b in zip(stations.geometry[:-1], stations.geometry[1:],
                                                 strict=True)) / 1000
    assert 7 < ends_km < 8 < path_km
