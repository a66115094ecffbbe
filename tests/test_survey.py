"""sscity.survey: checked against statsmodels, samplics, ipfn and hand-computed values."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import warnings

import numpy as np
import pandas as pd
import pytest
from ipfn import ipfn
from scipy.special import expit, logit
from sscity import survey
from sscity.survey import (
    Estimate,
    LogitEdgeWarning,
    design_effect,
    design_weights,
    group_estimates,
    kish_effective_n,
    logit_interval,
    multiple_response_table,
    nonresponse_adjustment,
    rake,
    row_weights,
    weighted_crosstab,
    weighted_mean,
    weighted_proportion,
    wilson_interval,
)
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

with warnings.catch_warnings():
    # samplics is archived and says so on import; it is only a reference here.
    warnings.simplefilter("ignore", FutureWarning)
    from samplics import PopParam, SampleWeight, TaylorEstimator

# The deck's published 2019 figures (reference/survey.md).
N_RESPONDENTS = 1481
N_HAPPY = 1069
FACTORS = {"weigh_health": 1066, "weigh_family": 741, "weigh_finances": 584, "weigh_leeway": 543}


# --------------------------------------------------------------------------- intervals


def test_wilson_reproduces_the_published_interval():
    lower, upper = wilson_interval(N_HAPPY, N_RESPONDENTS)
    assert (round(lower, 4), round(upper, 4)) == (0.6984, 0.7440)


@pytest.mark.parametrize("level", [0.90, 0.95, 0.99])
@pytest.mark.parametrize("k,n", [(0, 20), (1, 20), (2.5, 20), (10, 20), (20, 20), (1069, 1481), (37.4, 61.8)])
def test_wilson_matches_statsmodels(k, n, level):
    expected = proportion_confint(k, n, alpha=1 - level, method="wilson")
    np.testing.assert_allclose(wilson_interval(k, n, level), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.filterwarnings("ignore::sscity.survey.LogitEdgeWarning")  # k = 0 and n on purpose
def test_intervals_are_vectorised():
    k, n = np.array([0, 5, 20]), np.array([20, 20, 20])
    for interval in (wilson_interval, logit_interval):
        lower, upper = interval(k, n)
        for i in range(3):
            np.testing.assert_allclose((lower[i], upper[i]), interval(k[i], n[i]))


def test_logit_interval_closed_form():
    k, n, z = 30, 100, 1.959963984540054
    p = k / n
    half = z / np.sqrt(n * p * (1 - p))
    np.testing.assert_allclose(logit_interval(k, n), (expit(logit(p) - half), expit(logit(p) + half)))


@pytest.mark.parametrize("k,n", [(1, 10), (3.3, 17.2), (500, 1000), (1069, 1481)])
def test_logit_interval_properties(k, n):
    p = k / n
    lower, upper = logit_interval(k, n)
    assert 0 < lower < p < upper < 1
    # Symmetric on the log-odds scale; mirror image for the complement.
    assert logit(lower) + logit(upper) == pytest.approx(2 * logit(p))
    c_lower, c_upper = logit_interval(n - k, n)
    assert (c_lower, c_upper) == pytest.approx((1 - upper, 1 - lower))
    # Wider at a higher level.
    lo99, hi99 = logit_interval(k, n, level=0.99)
    assert lo99 < lower and hi99 > upper


@pytest.mark.parametrize("k", [0, 25])
def test_logit_interval_falls_back_to_wilson_at_the_edges(k):
    with pytest.warns(LogitEdgeWarning, match="Wilson interval is returned"):
        lower, upper = logit_interval(k, 25)
    assert (lower, upper) == pytest.approx(wilson_interval(k, 25))
    assert lower == 0 or upper == 1


@pytest.mark.parametrize(
    "args,match",
    [((5, 4), "between 0 and n"), ((-1, 4), "between 0 and n"), ((0, 0), "n must be positive"),
     ((np.nan, 4), "finite")],
)
def test_interval_input_errors(args, match):
    for interval in (wilson_interval, logit_interval):
        with pytest.raises(ValueError, match=match):
            interval(*args)


def test_level_must_be_a_fraction():
    with pytest.raises(ValueError, match="level=0.95"):
        wilson_interval(5, 10, level=95)


# --------------------------------------------------------------------------- Estimate


def test_estimate_is_frozen_prints_and_converts():
    est = weighted_proportion(np.r_[np.ones(N_HAPPY), np.zeros(N_RESPONDENTS - N_HAPPY)])
    assert str(est).startswith("0.7218 (95% CI 0.6984 to 0.744; n = 1481")
    assert est.as_dict()["n"] == N_RESPONDENTS
    assert set(est.as_dict()) == {f.name for f in dataclasses.fields(Estimate)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.estimate = 0.5  # type: ignore[misc]


# --------------------------------------------------------------------------- design weights


def test_design_weights_and_rows():
    w = design_weights({"a": 10, "b": 20}, pd.Series({"a": 1000, "b": 500}))
    assert w.to_dict() == {"a": 100.0, "b": 25.0}
    rows = row_weights(pd.Series(["b", "a", "a"], index=[7, 8, 9]), w)
    assert rows.tolist() == [25.0, 100.0, 100.0]
    assert rows.index.tolist() == [7, 8, 9]


def test_design_weights_errors():
    with pytest.raises(ValueError, match="No population size for stratum"):
        design_weights({"a": 10, "c": 5}, {"a": 1000})
    with pytest.raises(ValueError, match="Nobody was sampled in stratum.*Collapse"):
        design_weights({"a": 10, "b": 0}, {"a": 1000, "b": 50})
    with pytest.raises(ValueError, match="Nobody was sampled in stratum"):
        design_weights({"a": 10}, {"a": 1000, "b": 50})
    with pytest.raises(ValueError, match="n_h > N_h"):
        design_weights({"a": 10}, {"a": 5})
    with pytest.raises(ValueError, match="No weight for stratum"):
        row_weights(["a", "z"], {"a": 2.0})


# --------------------------------------------------------------------------- raking


@pytest.fixture(scope="module")
def raking_case():
    """400 respondents, district x age x sex, unequal design weights, consistent margins."""
    rng = np.random.default_rng(20190401)
    n = 400
    districts = ["tsukuba", "oho", "toyosato", "sakura", "yatabe", "kukizaki"]
    data = pd.DataFrame({
        "district": rng.choice(districts, size=n, p=[0.15, 0.1, 0.1, 0.25, 0.3, 0.1]),
        "age": rng.choice(["20-39", "40-64", "65+"], size=n, p=[0.25, 0.4, 0.35]),
        "sex": rng.choice(["female", "male"], size=n),
    })
    w0 = data["district"].map(dict(zip(districts, [40.0, 35.0, 45.0, 60.0, 70.0, 30.0], strict=True)))
    total = 200_000.0
    margins = {
        "district": pd.Series([0.14, 0.07, 0.09, 0.22, 0.38, 0.10], index=districts) * total,
        "age": pd.Series({"20-39": 0.36, "40-64": 0.40, "65+": 0.24}) * total,
        "sex": pd.Series({"female": 0.49, "male": 0.51}) * total,
    }
    return data, w0, margins


def test_rake_reaches_every_margin(raking_case):
    data, w0, margins = raking_case
    w = rake(data, margins, weights=w0, tol=1e-12, max_iter=1000)
    assert w.index.equals(data.index) and (w > 0).all()
    for column, target in margins.items():
        got = w.groupby(data[column]).sum().reindex(target.index)
        np.testing.assert_allclose(got, target, rtol=1e-10)


def test_rake_matches_samplics(raking_case):
    data, w0, margins = raking_case
    ours = rake(data, margins, weights=w0, tol=1e-12, max_iter=1000)
    theirs = SampleWeight().rake(
        samp_weight=w0.to_numpy(),
        control={c: m.to_dict() for c, m in margins.items()},
        margins={c: data[c].to_numpy(dtype=object) for c in margins},
        tol=1e-12, ctrl_tol=1e-12, max_iter=1000,
    )
    np.testing.assert_allclose(ours.to_numpy(), theirs, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # ipfn uses inplace=True (pandas 3.1)
def test_rake_matches_ipfn(raking_case):
    data, w0, margins = raking_case
    ours = rake(data, margins, weights=w0, tol=1e-12, max_iter=1000)
    # ipfn writes floats into the weight column: under pandas 3 it must already be float.
    frame = data.assign(row=np.arange(len(data)), total=w0.astype(float).to_numpy())
    aggregates = [m.rename_axis(c) for c, m in margins.items()]
    with contextlib.redirect_stdout(io.StringIO()):  # ipfn prints its convergence status
        fitted = ipfn.ipfn(frame, aggregates, [[c] for c in margins], convergence_rate=1e-12,
                           max_iteration=1000).iteration()
    theirs = fitted.sort_values("row")["total"].to_numpy()
    np.testing.assert_allclose(ours.to_numpy(), theirs, rtol=1e-6)


def test_rake_one_margin_is_poststratification():
    data = pd.DataFrame({"g": ["a", "a", "b", "b", "b"]})
    w = rake(data, {"g": pd.Series({"a": 10.0, "b": 30.0})}, weights=[1, 3, 1, 1, 1])
    assert w.tolist() == pytest.approx([2.5, 7.5, 10, 10, 10])


def _small():
    return pd.DataFrame({"d": ["a", "a", "b", "b"], "s": ["x", "y", "x", "y"]})


@pytest.mark.parametrize(
    "margins,kwargs,match",
    [
        ({"d": {"a": 5.0}}, {}, r"categories that are not in its margin: \['b'\]"),
        ({"d": {"a": 5.0, "b": 5.0, "c": 1.0}}, {}, r"Margin category \['c'\].*no respondents.*Collapse"),
        ({"d": {"a": 5.0, "b": 5.0}, "s": {"x": 6.0, "y": 6.0}}, {},
         r"different population totals \(d: 10, s: 12\)"),
        ({"d": {"a": 5.0, "b": 5.0}}, {"weights": [1, 0, 1, 1]}, "Starting weights must be positive"),
        ({"d": {"a": 5.0, "b": 5.0}}, {"weights": [1, -2, 1, 1]}, "must not be negative"),
        ({"d": {"a": 5.0, "b": 0.0}}, {}, "positive population totals"),
        ({"age": {"a": 5.0}}, {}, r"Column\(s\) \['age'\] are not in the data"),
    ],
)
def test_rake_input_errors(margins, kwargs, match):
    with pytest.raises((ValueError, KeyError), match=match):
        rake(_small(), margins, **kwargs)


def test_rake_rejects_missing_values():
    data = _small().astype(object)
    data.loc[2, "d"] = np.nan
    with pytest.raises(ValueError, match="'d' has 1 missing values.*Impute"):
        rake(data, {"d": {"a": 5.0, "b": 5.0}})


def test_rake_warns_when_margins_cannot_be_reached():
    # Only (a, x) and (b, y) occur, so weight(a) = weight(x): the targets a=50, x=70 conflict.
    data = pd.DataFrame({"d": ["a", "b"], "s": ["x", "y"]})
    with pytest.warns(RuntimeWarning, match="did not converge in 20 passes"):
        rake(data, {"d": {"a": 50.0, "b": 50.0}, "s": {"x": 70.0, "y": 30.0}}, max_iter=20)


# --------------------------------------------------------------------------- Kish


def test_kish_effective_n_and_design_effect():
    assert kish_effective_n(np.ones(10)) == 10
    assert design_effect(np.full(7, 3.5)) == pytest.approx(1)
    assert kish_effective_n([1, 1, 1, 3]) == pytest.approx(3)  # 6**2 / 12
    assert design_effect([1, 1, 1, 3]) == pytest.approx(4 / 3)
    assert kish_effective_n([2, 2, 0, 0]) == pytest.approx(2)  # zero weights add nothing
    assert design_effect([2, 2, 0, 0]) == pytest.approx(1)
    w = np.random.default_rng(3).lognormal(size=500)
    cv2 = w.var() / w.mean() ** 2
    assert design_effect(w) == pytest.approx(1 + cv2)  # Kish: deff = 1 + CV²
    with pytest.raises(ValueError, match="must not be negative"):
        kish_effective_n([1, -1])


# --------------------------------------------------------------------------- means, proportions


def test_weighted_mean_equal_weights_matches_descrstatsw():
    y = np.random.default_rng(5).integers(0, 11, size=80).astype(float)
    est = weighted_mean(y)
    ref = DescrStatsW(y)
    assert est.estimate == pytest.approx(ref.mean)
    assert est.se == pytest.approx(ref.std_mean)
    np.testing.assert_allclose((est.lower, est.upper), ref.tconfint_mean(alpha=0.05))
    assert est.n == 80 and est.n_eff == pytest.approx(80)


def test_weighted_mean_matches_samplics_taylor():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 11, size=150).astype(float)
    w = rng.uniform(20, 90, size=150)
    est = weighted_mean(pd.Series(y), pd.Series(w))
    ref = TaylorEstimator(PopParam.mean)
    ref.estimate(y=y, samp_weight=w)
    assert est.estimate == pytest.approx(ref.point_est)
    assert est.se == pytest.approx(ref.stderror, rel=1e-10)
    np.testing.assert_allclose((est.lower, est.upper), (ref.lower_ci, ref.upper_ci), rtol=1e-10)
    assert est.n_eff == pytest.approx(kish_effective_n(w))


def test_weighted_mean_skips_missing_answers_and_checks_alignment():
    est = weighted_mean(pd.Series([1.0, np.nan, 3.0, 5.0]), [1, 100, 1, 2])
    assert est.estimate == pytest.approx((1 + 3 + 10) / 4) and est.n == 3
    with pytest.raises(ValueError, match="different index labels"):
        weighted_mean(pd.Series([1.0, 2.0]), pd.Series([1.0, 1.0], index=[5, 6]))
    with pytest.raises(ValueError, match="at least 2 answers"):
        weighted_mean([4.0])
    with pytest.raises(ValueError, match="one weight per row"):
        weighted_mean([1.0, 2.0, 3.0], [1.0, 2.0])


def test_weighted_proportion_unweighted_is_wilson():
    happy = np.r_[np.ones(N_HAPPY), np.zeros(N_RESPONDENTS - N_HAPPY)]
    est = weighted_proportion(happy)
    assert est.estimate == pytest.approx(0.72181, abs=1e-5)
    assert (round(est.lower, 4), round(est.upper, 4)) == (0.6984, 0.7440)


@pytest.mark.parametrize("method", ["wilson", "logit"])
def test_weighted_proportion_uses_kish_effective_n(method):
    rng = np.random.default_rng(8)
    x = rng.integers(0, 2, size=300)
    w = rng.uniform(1, 5, size=300)
    est = weighted_proportion(x, w, method=method)
    p, n_eff = np.average(x, weights=w), kish_effective_n(w)
    interval = wilson_interval if method == "wilson" else logit_interval
    assert est.estimate == pytest.approx(p)
    assert (est.lower, est.upper) == pytest.approx(interval(p * n_eff, n_eff))
    assert est.se == pytest.approx(np.sqrt(p * (1 - p) / n_eff))


def test_weighted_proportion_rejects_non_binary():
    with pytest.raises(ValueError, match="must be 0/1"):
        weighted_proportion([0, 1, 7])
    with pytest.raises(ValueError, match="method must be one of"):
        weighted_proportion([0, 1], method="exact")


# --------------------------------------------------------------------------- tables


@pytest.fixture(scope="module")
def deck_answers():
    """1,481 respondents with the deck's four factor counts, plus 9 who skipped the question."""
    rng = np.random.default_rng(2019)
    cols = {c: rng.permutation(np.r_[np.ones(k), np.zeros(N_RESPONDENTS - k)]) for c, k in FACTORS.items()}
    answered = pd.DataFrame(cols)
    skipped = pd.DataFrame(np.nan, index=range(9), columns=list(FACTORS))
    return pd.concat([answered, skipped], ignore_index=True)


def test_multiple_response_table_on_the_deck_counts(deck_answers):
    labels = {"weigh_health": "health", "weigh_family": "family relations",
              "weigh_finances": "household finances", "weigh_leeway": "mental leeway"}
    table = multiple_response_table(deck_answers, list(FACTORS), labels=labels)
    assert table.index.tolist() == ["health", "family relations", "household finances", "mental leeway"]
    assert table["respondents"].tolist() == [1066, 741, 584, 543]
    # % of the 1,481 respondents (the skipped rows are not in the denominator) ...
    assert table["pct_of_respondents"].round(2).tolist() == [71.98, 50.03, 39.43, 36.66]
    assert table.attrs["n"] == N_RESPONDENTS
    # ... not % of the 2,934 mentions.
    assert table["respondents"].sum() == 2934
    assert table.loc["health", "mentions_share_pct"] == pytest.approx(100 * 1066 / 2934)
    assert table["mentions_share_pct"].sum() == pytest.approx(100)
    expected = 100 * np.array(proportion_confint(1066, N_RESPONDENTS, method="wilson"))
    np.testing.assert_allclose(table.loc["health", ["lower", "upper"]].to_numpy(dtype=float), expected)


def test_multiple_response_table_weighted_and_errors():
    data = pd.DataFrame({"a": [1, 1, 0, 0], "b": [0, 1, 1, 0], "w": [1.0, 1.0, 1.0, 3.0]})
    table = multiple_response_table(data, ["a", "b"], weights="w")
    assert table.loc["a", "pct_of_respondents"] == pytest.approx(100 * 2 / 6)
    assert table.loc["b", "respondents"] == pytest.approx(2)
    with pytest.raises(ValueError, match="must be 0/1"):
        multiple_response_table(data.assign(a=[1, 2, 0, 0]), ["a", "b"])
    with pytest.raises(KeyError, match="no weight column 'weight'"):
        multiple_response_table(data, ["a", "b"], weights="weight")


@pytest.fixture
def tiny():
    """A: yes, yes, no (weights 1, 1, 2); B: yes, no (weights 1, 3)."""
    return pd.DataFrame({
        "district": ["A", "A", "A", "B", "B"],
        "happy": [1, 1, 0, 1, 0],
        "score": [8.0, 6.0, 4.0, 9.0, 5.0],
        "w": [1.0, 1.0, 2.0, 1.0, 3.0],
    })


def test_weighted_crosstab_by_row(tiny):
    tab = weighted_crosstab(tiny, "district", "happy", weights="w")
    assert tab.columns.tolist() == ["district", "happy", "weighted_count", "pct", "lower", "upper",
                                    "n", "n_eff"]
    assert len(tab) == 4
    by = tab.set_index(["district", "happy"])
    assert by.loc[("A", 1), "weighted_count"] == 2
    assert by.loc[("A", 1), "pct"] == pytest.approx(50)
    assert by.loc[("B", 0), "pct"] == pytest.approx(75)
    assert by.loc[("A", 0), "n"] == 3 and by.loc[("B", 0), "n"] == 2
    assert by.loc[("A", 0), "n_eff"] == pytest.approx(16 / 6)
    assert by.loc[("B", 1), "n_eff"] == pytest.approx(16 / 10)
    lo, hi = wilson_interval(0.25 * 1.6, 1.6)
    assert (by.loc[("B", 1), "lower"], by.loc[("B", 1), "upper"]) == pytest.approx((100 * lo, 100 * hi))


def test_weighted_crosstab_by_column_and_overall(tiny):
    by_col = weighted_crosstab(tiny, "district", "happy", weights="w", normalize="col")
    by_col = by_col.set_index(["district", "happy"])
    assert by_col.loc[("A", 1), "pct"] == pytest.approx(100 * 2 / 3)
    assert by_col.loc[("A", 1), "n"] == 3  # respondents with happy = 1
    overall = weighted_crosstab(tiny, "district", "happy", weights="w", normalize="all")
    assert overall["pct"].sum() == pytest.approx(100)
    assert (overall["n"] == 5).all()
    with pytest.raises(ValueError, match="normalize must be"):
        weighted_crosstab(tiny, "district", "happy", normalize="rows")


def test_group_estimates(tiny):
    means = group_estimates(tiny, "district", "score", weights="w")
    assert means.index.tolist() == ["A", "B"] and means.index.name == "district"
    assert {"estimate", "lower", "upper", "n", "n_eff", "se"} <= set(means.columns)
    assert means.loc["A", "estimate"] == pytest.approx((8 + 6 + 8) / 4)
    assert means.loc["B", "estimate"] == pytest.approx((9 + 15) / 4)
    ref = weighted_mean(tiny.loc[tiny.district == "A", "score"], tiny.loc[tiny.district == "A", "w"])
    assert means.loc["A"].to_dict() == pytest.approx(ref.as_dict())
    shares = group_estimates(tiny, "district", "happy", weights="w", kind="proportion")
    assert shares["estimate"].tolist() == pytest.approx([0.5, 0.25])
    ordered = tiny.assign(district=pd.Categorical(tiny["district"], ["B", "A"], ordered=True))
    assert group_estimates(ordered, "district", "score").index.tolist() == ["B", "A"]
    with pytest.raises(ValueError, match="Group district = 'B'.*0/1"):
        group_estimates(tiny.assign(happy=[1, 1, 0, 2, 0]), "district", "happy", kind="proportion")


# --------------------------------------------------------------------------- non-response


def test_nonresponse_adjustment_preserves_class_totals():
    rng = np.random.default_rng(11)
    n = 600
    sample = pd.DataFrame({
        "district": rng.choice(["a", "b", "c"], size=n),
        "age": rng.choice(["young", "old"], size=n),
        "responded": rng.random(n) < 0.55,
        "design_weight": rng.uniform(30, 80, size=n),
    })
    adjusted = nonresponse_adjustment(sample, "responded", "design_weight", classes=["district", "age"])
    assert adjusted.index.equals(sample.index)
    assert (adjusted[~sample["responded"]] == 0).all() and (adjusted[sample["responded"]] > 0).all()
    before = sample.groupby(["district", "age"])["design_weight"].sum()
    after = adjusted.groupby([sample["district"], sample["age"]]).sum()
    np.testing.assert_allclose(after.reindex(before.index), before)
    # Without classes: one overall factor.
    overall = nonresponse_adjustment(sample, sample["responded"].to_numpy(), sample["design_weight"])
    assert overall.sum() == pytest.approx(sample["design_weight"].sum())


def test_nonresponse_adjustment_class_without_responders():
    sample = pd.DataFrame({"cls": ["a", "a", "b"], "responded": [1, 0, 0]})
    with pytest.raises(ValueError, match=r"Nobody responded in class \['b'\].*[Cc]ollapse"):
        nonresponse_adjustment(sample, "responded", classes="cls")


def test_public_api_is_listed():
    for name in survey.__all__:
        assert callable(getattr(survey, name)), name
