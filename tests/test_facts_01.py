"""Module 01: every data-derived number its prose quotes equals what the course's code computes.

The README's *Facts and sources* table lists where each real-world figure comes from; the
numbers below are the ones computed from the course's (synthetic) files and the published
aggregates, each recomputed here with ``sscity`` so that text and code cannot drift apart.
"""

from __future__ import annotations

import itertools
import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from prose_facts import check_quoted, module_text
from scipy import stats
from sscity.data.loaders import load_districts, load_mailed_sample, load_register, load_survey
from sscity.survey import (
    design_effect,
    group_estimates,
    kish_effective_n,
    logit_interval,
    nonresponse_adjustment,
    rake,
    weighted_mean,
    weighted_proportion,
    wilson_interval,
)

MODULE = "01-survey-analytics"
Z = stats.norm.ppf(0.975)


@cache
def data() -> dict:
    """Everything the lesson computes, once."""
    survey = load_survey(2019)
    register = load_register()
    mailed = load_mailed_sample()
    margins = {c: register.groupby(c, observed=True)["population"].sum()
               for c in ("district_code", "age_group", "sex")}
    survey["raked_weight"] = rake(survey, margins, weights="design_weight")
    nr_all = nonresponse_adjustment(mailed, "responded", weights="design_weight",
                                    classes=["district_code", "age_group"])
    answered = mailed["responded"] == 1
    nr_by_id = pd.Series(nr_all[answered].to_numpy(),
                         index=mailed.loc[answered, "respondent_id"].to_numpy())
    survey["nr_weight"] = survey["respondent_id"].map(nr_by_id).to_numpy()
    survey["raked_from_nr"] = rake(survey, margins, weights="nr_weight")
    districts = load_districts()
    area_of = dict(zip(districts["district_code"].astype(str), districts["area_type"], strict=True))
    mailed["area_type"] = mailed["district_code"].astype(str).map(area_of)
    return {"survey": survey, "register": register, "mailed": mailed,
            "waves": {wave: load_survey(wave) for wave in (2015, 2017, 2019)}}


def happy(frame) -> pd.Series:
    return (frame["happiness"] >= 6).astype(int)


def by_area() -> pd.DataFrame:
    return group_estimates(data()["survey"], "district_code", "happiness", weights="raked_weight")


def check(quote: str, number: str, computed: float, percent: bool = False) -> None:
    check_quoted(MODULE, quote, number, computed, percent=percent)


# ------------------------------------------------------------------ published figures and counts

def test_count_behind_the_published_percentage():
    check("72.2 % × 1,481 = 1,069.28", "1,069.28", 0.722 * 1481)
    k = round(0.722 * 1481)
    check("1,069 (1,070 also fits; not published)", "1,069", k)
    candidates = [k for k in range(1482) if round(100 * k / 1481, 1) == 72.2]
    assert candidates == [1069, 1070]
    assert int(happy(data()["survey"]).sum()) == k  # the synthetic file is built with it


def test_wilson_interval_of_the_headline():
    lower, upper = wilson_interval(1069, 1481)
    check("72.2 % (95 % CI 69.8 % to 74.4 %), assuming", "69.8", lower, percent=True)
    check("72.2 % (95 % CI 69.8 % to 74.4 %), assuming", "74.4", upper, percent=True)
    check("69.8 %–74.4 %, assuming a simple random sample", "69.8", lower, percent=True)
    check("69.8 %–74.4 %, assuming a simple random sample", "74.4", upper, percent=True)


def test_width_of_wilson_and_logit_at_the_edges_for_n_20():
    lower, upper = wilson_interval(0, 20)
    check("keep a width of about 0.16 there", "0.16", upper - lower)
    with pytest.warns(Warning, match="Wilson interval is returned"):
        l_lower, l_upper = logit_interval(0, 20)
    assert (l_lower, l_upper) == pytest.approx((lower, upper))


def test_published_factor_counts_are_reproduced():
    survey = data()["survey"]
    for column, count, pct in (("weigh_health", 1066, "72.0"), ("weigh_family", 741, "50.0"),
                               ("weigh_finances", 584, "39.4"), ("weigh_leeway", 543, "36.7")):
        assert int(survey[column].sum()) == count
        check(f"{count:,} ({pct} %)", pct, count / len(survey), percent=True)


def test_multiple_response_figures():
    survey = data()["survey"]
    weigh = [c for c in survey.columns if c.startswith("weigh_")]
    mentions = int(survey[weigh].to_numpy().sum())
    check("As a share of the 5,164 mentions", "5,164", mentions)
    check("it would be only 20.6 %", "20.6", survey["weigh_health"].sum() / mentions, percent=True)
    check("Note also that 8 respondents ticked nothing", "8", int((survey[weigh].sum(axis=1) == 0).sum()))


# ------------------------------------------------------------------ design, weights, non-response

def test_synthetic_register_margins():
    adults = data()["register"].groupby("district_code", observed=True)["population"].sum()
    check("Yatabe has about 75,000 adults", "75,000", round(adults["yatabe"], -3))
    check("Kukizaki about 16,000 (plausible sizes", "16,000", round(adults["kukizaki"], -3))
    check("about **4.7 times as likely**", "4.7", adults["yatabe"] / adults["kukizaki"])


def test_design_weight_costs():
    w = data()["survey"]["design_weight"]
    check("worth about 1,014 equally weighted ones", "1,014", kish_effective_n(w))
    check("(design effect ≈ 1.46)", "1.46", design_effect(w))
    check("the effective sample size falls (design effect ≈ 1.45)", "1.45",
          design_effect(data()["survey"]["raked_weight"]))
    check("(Kish n ≈ 1,018 of 1,481)", "1,018", kish_effective_n(data()["survey"]["raked_weight"]))


def test_response_rates_of_the_mailed_sample():
    mailed = data()["mailed"]
    check("1,481 came back (54.9 %", "54.9", mailed["responded"].mean(), percent=True)
    rates = 100 * mailed.groupby(["age_group", "area_type"], observed=True)["responded"].mean().unstack()
    sixties = rates.loc["60-69"]
    check("up to the sixties (about 77–79 %)", "77", sixties.min())
    check("up to the sixties (about 77–79 %)", "79", sixties.max())
    check("far less in the periphery (42 %)", "42", rates.loc["70-79", "periphery"])
    check("than in the centre (76 %)", "76", rates.loc["70-79", "centre"])
    check("least of all (21 % in the periphery)", "21", rates.loc["80+", "periphery"])


def test_nonresponse_adjustment_effects():
    survey = data()["survey"]
    factor = (survey["nr_weight"] / survey["design_weight"]).max()
    check("largest (up to about 7)", "7", factor)
    quote = "lowers the mean a little (7.10 → 7.08)"
    check(quote, "7.10", weighted_mean(survey["happiness"], survey["design_weight"]).estimate)
    check(quote, "7.08", weighted_mean(survey["happiness"], survey["nr_weight"]).estimate)
    quote = "(75.1 % → 74.5 %)"
    check(quote, "75.1", weighted_proportion(happy(survey), survey["design_weight"]).estimate, percent=True)
    check(quote, "74.5", weighted_proportion(happy(survey), survey["nr_weight"]).estimate, percent=True)


def test_five_weightings_figure():
    survey = data()["survey"]

    def mean(weights):
        return weighted_mean(survey["happiness"], survey[weights]).estimate

    check("Unweighted (as published): 6.94", "6.94", survey["happiness"].mean())
    check("Design-weighted: 7.10", "7.10", mean("design_weight"))
    check("Non-response-adjusted: 7.08", "7.08", mean("nr_weight"))
    check("Raked from the design weights: 7.08", "7.08", mean("raked_weight"))
    check("Raked from the non-response-adjusted weights: 7.08", "7.08", mean("raked_from_nr"))
    kish = [kish_effective_n(survey[c])
            for c in ("design_weight", "nr_weight", "raked_weight", "raked_from_nr")]
    assert 995 <= min(kish) and max(kish) <= 1025, kish  # "about 1,000–1,020"
    assert "a Kish n of about 1,000–1,020" in module_text(MODULE)
    check("The raked mean (about 7.08)", "7.08", mean("raked_weight"))
    raked = weighted_mean(survey["happiness"], survey["raked_weight"])
    check("the raked mean's CI of about ±0.12", "0.12", (raked.upper - raked.lower) / 2)


# ------------------------------------------------------------------ districts

def test_district_means_on_the_map():
    est = by_area()["estimate"]
    for name, code, number in (("Sakura", "sakura", "7.37"), ("Yatabe", "yatabe", "7.25"),
                               ("Toyosato", "toyosato", "7.27"), ("Tsukuba", "tsukuba", "6.40"),
                               ("Kukizaki", "kukizaki", "6.34")):
        check(f"{name} ({number})", number, est[code])
    check("in between (6.84)", "6.84", est["oho"])
    half = (by_area()["upper"] - by_area()["lower"]) / 2
    assert 0.2 <= half.min() and half.max() <= 0.3  # "intervals of about ±0.25"
    assert "with intervals of about ±0.25" in module_text(MODULE)
    n = data()["survey"]["district_code"].value_counts()
    assert 225 <= n.min() and n.max() <= 285  # "about 230–280 respondents"
    assert "about 230–280 respondents" in module_text(MODULE)


def test_fifteen_pairs_and_bonferroni():
    table = by_area()
    pairs = list(itertools.combinations(table.index, 2))
    assert len(pairs) == 15
    check("it is one of 15", "15", len(pairs))
    z_b = stats.norm.ppf(1 - 0.05 / (2 * len(pairs)))
    clear_95, clear_b = 0, 0
    for a, b in pairs:
        d = table.loc[a, "estimate"] - table.loc[b, "estimate"]
        se = np.hypot(table.loc[a, "se"], table.loc[b, "se"])
        clear_95 += not (d - Z * se <= 0 <= d + Z * se)
        clear_b += not (d - z_b * se <= 0 <= d + z_b * se)
    check("Of the 15 pairs, 11 look clear", "11", clear_95)
    check("after the Bonferroni correction 7 remain", "7", clear_b)
    d = table.loc["oho", "estimate"] - table.loc["tsukuba", "estimate"]
    se = np.hypot(table.loc["oho", "se"], table.loc["tsukuba", "se"])
    check("the difference (0.07 to 0.81)", "0.07", d - Z * se)
    check("the difference (0.07 to 0.81)", "0.81", d + Z * se)
    check("runs from −0.11 to 0.99 and covers 0", "−0.11", d - z_b * se)
    check("runs from −0.11 to 0.99 and covers 0", "0.99", d + z_b * se)


# ------------------------------------------------------------------ trend and model

def test_trend_figures():
    waves = data()["waves"]
    means = {w: weighted_mean(f["happiness"], f["design_weight"]) for w, f in waves.items()}
    shares = {w: weighted_proportion(happy(f), f["design_weight"]) for w, f in waves.items()}
    quote = "labelled 6.89, 6.99 and 7.10"
    for wave, number in ((2015, "6.89"), (2017, "6.99"), (2019, "7.10")):
        check(quote, number, means[wave].estimate)
    quote = "(74.4 %, 76.5 %, 75.1 %)"
    for wave, number in ((2015, "74.4"), (2017, "76.5"), (2019, "75.1")):
        check(quote, number, shares[wave].estimate, percent=True)
    d = means[2019].estimate - means[2015].estimate
    se = np.hypot(means[2015].se, means[2019].se)
    check("rose by about 0.22 points", "0.22", d)
    check("(95 % CI 0.05 to 0.39)", "0.05", d - Z * se)
    check("(95 % CI 0.05 to 0.39)", "0.39", d + Z * se)
    d = 100 * (shares[2019].estimate - shares[2015].estimate)
    se = 100 * np.hypot(shares[2015].se, shares[2019].se)
    quote = "(+0.7 points, −3.2 to +4.6)"
    check(quote, "+0.7", d)
    check(quote, "−3.2", d - Z * se)
    check(quote, "+4.6", d + Z * se)


def test_model_coefficients():
    survey = data()["survey"]
    formula = "happiness ~ C(self_rated_health) + C(age_group) + C(household) + C(district_code) + C(sex)"
    model = smf.ols(formula, data=survey).fit()
    check("from −0.69 (good)", "−0.69", model.params["C(self_rated_health)[T.2]"])
    poor = model.params["C(self_rated_health)[T.5]"]
    check("to −3.21 (poor) points", "−3.21", poor)
    check("happiness will rise by about 3.2 points", "3.2", -poor)
    lower, upper = model.conf_int().loc["C(self_rated_health)[T.5]"]
    check("the health gap's CI of about −3.8 to −2.6", "−3.8", lower)
    check("the health gap's CI of about −3.8 to −2.6", "−2.6", upper)
    check('only 29 people in "poor" health', "29", int((survey["self_rated_health"] == 5).sum()))


def test_no_warning_is_left_unexplained():
    # The lesson's only expected warning is the logit fallback it explains.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wilson_interval(np.arange(21), 20)
    assert "LogitEdgeWarning" in module_text(MODULE)
