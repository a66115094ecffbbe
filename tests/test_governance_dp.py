"""sscity.governance.dp: scales, budgets and accuracies checked against OpenDP itself and the
closed forms of the Laplace distributions -- never against noisy values (OpenDP has no seed)."""

from __future__ import annotations

import math

import numpy as np
import opendp.prelude as dp
import pandas as pd
import pytest
from sscity import survey
from sscity.data.loaders import load_survey
from sscity.governance.dp import (
    BudgetExceededError,
    DPRelease,
    PrivacyBudget,
    compare_with_sampling_error,
    dp_counts,
    dp_means,
    dp_sums,
    smallest_epsilon,
)

dp.enable_features("contrib")

GROUPS = ["north", "centre", "south"]


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    rng = np.random.default_rng(20191010)
    n = 300
    return pd.DataFrame(
        {
            "district": rng.choice(GROUPS, size=n),
            "happiness": rng.integers(0, 11, size=n),
            "income": rng.gamma(2.0, 3.0, size=n),
        }
    )


@pytest.fixture(scope="module")
def happiness() -> pd.DataFrame:
    return load_survey(2019)


# --------------------------------------------------------------------------- reference scales


def test_reference_scales_budget_one_split_over_two(people):
    # OpenDP's Context with privacy_unit=dp.unit_of(contributions=1),
    # privacy_loss=dp.loss_of(epsilon=1.0), split_evenly_over=2: a count's Laplace scale
    # is 2.0 and a sum clamped to (0, 10) has scale 20.0.
    context = dp.Context.compositor(
        data=people["happiness"].tolist(),
        privacy_unit=dp.unit_of(contributions=1),
        privacy_loss=dp.loss_of(epsilon=1.0),
        split_evenly_over=2,
    )
    assert context.query().count().laplace().param() == 2.0
    assert context.query().clamp((0, 10)).sum().laplace().param() == 20.0

    budget = PrivacyBudget(1.0)
    epsilon = budget.split_evenly(2)
    assert epsilon == 0.5
    counts = dp_counts(people, "district", epsilon, groups=GROUPS, budget=budget)
    sums = dp_sums(people, "district", "happiness", (0, 10), epsilon, groups=GROUPS, budget=budget)
    assert (counts.table["scale"] == 2.0).all()
    assert (sums.table["scale"] == 20.0).all()
    assert budget.spent == 1.0 and budget.remaining == 0.0
    with pytest.raises(BudgetExceededError):
        dp_counts(people, "district", 0.01, groups=GROUPS, budget=budget)


def test_counts_of_all_groups_cost_one_epsilon(people):
    # Parallel composition, proven by OpenDP's count_by_categories: the vector of counts has
    # the same scale as one count, however many groups there are.
    one = dp_counts(people, "district", 0.25, groups=["north"])
    three = dp_counts(people, "district", 0.25, groups=GROUPS)
    assert one.table["scale"].iloc[0] == three.table["scale"].iloc[0] == 4.0
    assert list(three.table.index) == GROUPS
    assert three.table["estimate"].map(type).eq(int).all()


def test_float_sum_scale_has_only_a_rounding_allowance(people):
    sums = dp_sums(people, "district", "income", (0.0, 10.0), 0.5, groups=GROUPS)
    assert sums.mechanism == "Laplace"
    # OpenDP adds a hair for floating-point summation; the scale is 20 up to that.
    assert sums.table["scale"].between(20.0, 20.0 + 1e-5).all()


def test_mean_scale_follows_the_dp_count(people):
    means = dp_means(people, "district", "happiness", (0, 10), 1.0, groups=GROUPS, count_share=0.25)
    for _, row in means.table.iterrows():
        # Sensitivity of a mean of n_dp values clamped to (0, 10) is 10 / n_dp; the mean gets
        # 3/4 of epsilon = 1.
        assert row["scale"] == pytest.approx(10 / (row["n_dp"] * 0.75), rel=1e-9)


# --------------------------------------------------------------------------- accuracy


def test_accuracy_is_the_laplace_tail_quantile(people):
    # Continuous Laplace of scale b: P(|X| > t) = exp(-t / b), so t = b ln(1 / alpha).
    sums = dp_sums(people, "district", "income", (0.0, 10.0), 0.5, groups=GROUPS, level=0.9)
    for _, row in sums.table.iterrows():
        assert row["accuracy"] == pytest.approx(row["scale"] * math.log(1 / 0.1), rel=1e-9)
        assert row["accuracy"] == pytest.approx(dp.laplacian_scale_to_accuracy(row["scale"], 0.1))


def test_count_accuracy_is_the_discrete_laplace_tail_quantile(people):
    # Discrete Laplace of scale b (Canonne, Kamath & Steinke 2020): P(X = k) ∝ exp(-|k| / b),
    # so P(|X| >= a) = 2 exp(-a / b) / (1 + exp(-1 / b)); solve for a at alpha = 0.05.
    counts = dp_counts(people, "district", 0.5, groups=GROUPS)
    b = 2.0
    expected = b * math.log(2 / (0.05 * (1 + math.exp(-1 / b))))
    assert counts.table["accuracy"].iloc[0] == pytest.approx(expected, rel=1e-9)
    assert counts.table["accuracy"].iloc[0] == pytest.approx(6.429605, abs=1e-6)


# --------------------------------------------------------------------------- budget


def test_budget_accounting_and_bilingual_refusal():
    budget = PrivacyBudget(1.0)
    for eps, label in [(0.1, "a"), (0.2, "b"), (0.7, "c")]:
        budget.spend(eps, label)
    assert budget.spent == pytest.approx(1.0) and budget.remaining == 0.0
    ledger = budget.ledger
    assert list(ledger["release"]) == ["a", "b", "c"]
    assert ledger["spent_after"].tolist() == pytest.approx([0.1, 0.3, 1.0])
    with pytest.raises(BudgetExceededError, match="only 0 of 1 is left") as info:
        budget.spend(0.05, "one more")
    assert "予算" in str(info.value)
    assert len(budget.ledger) == 3  # a refused release is not recorded
    assert "1 release" not in str(budget) and "3 release(s)" in str(budget)


def test_refused_release_draws_no_noise(people):
    budget = PrivacyBudget(0.3)
    with pytest.raises(BudgetExceededError):
        dp_means(people, "district", "happiness", (0, 10), 0.5, groups=GROUPS, budget=budget)
    assert budget.spent == 0.0


# --------------------------------------------------------------------------- choosing epsilon


def test_comparison_uses_module_01_sampling_errors(happiness):
    table = compare_with_sampling_error(
        happiness, "district_code", "happiness", (0, 10), epsilons=[0.5, 2.0],
        weights="design_weight",
    )
    assert len(table) == 12
    for district, rows in table.groupby("district_code", observed=True):
        part = happiness[happiness["district_code"] == district]
        est = survey.weighted_mean(part["happiness"], part["design_weight"])
        assert rows["sampling_se"].iloc[0] == pytest.approx(est.se)
        assert rows["sampling_halfwidth"].iloc[0] == pytest.approx((est.upper - est.lower) / 2)
        n = len(part)
        for _, row in rows.iterrows():
            assert row["dp_scale"] == pytest.approx(10 / (n * row["epsilon"] / 2))
            assert row["dp_halfwidth"] == pytest.approx(row["dp_scale"] * math.log(20))
    # More epsilon, less noise.
    wide = table.pivot(index="district_code", columns="epsilon", values="ratio")
    assert (wide[2.0] < wide[0.5]).all()


def test_smallest_epsilon_is_the_first_that_suits_every_group():
    table = pd.DataFrame(
        {
            "district": ["a", "a", "a", "b", "b", "b"],
            "epsilon": [0.5, 1.0, 2.0] * 2,
            "ratio": [2.0, 0.4, 0.2, 3.0, 0.6, 0.3],
        }
    )
    assert smallest_epsilon(table, max_ratio=0.5) == 2.0
    assert smallest_epsilon(table, max_ratio=0.6) == 1.0
    assert math.isnan(smallest_epsilon(table, max_ratio=0.1))


def test_release_prints(people):
    release = dp_counts(people, "district", 1.0, groups=GROUPS)
    assert isinstance(release, DPRelease)
    assert "DP count by district (epsilon = 1" in str(release)
    assert "<table" in release._repr_html_()
    table = release.table
    assert list(table.columns) == ["estimate", "lower", "upper", "scale", "accuracy"]
    assert (table["upper"] - table["estimate"]).tolist() == pytest.approx(table["accuracy"].tolist())
    assert (table["estimate"] - table["lower"]).tolist() == pytest.approx(table["accuracy"].tolist())


def test_a_public_group_without_rows_is_released_too(people):
    # Leaving an empty district out would tell that nobody there answered.
    groups = [*GROUPS, "nowhere"]
    assert list(dp_counts(people, "district", 1.0, groups=groups).table.index) == groups
    sums = dp_sums(people, "district", "happiness", (0, 10), 1.0, groups=groups)
    assert (sums.table["scale"] == 10.0).all()
    means = dp_means(people, "district", "happiness", (0, 10), 1.0, groups=groups)
    assert means.table.loc["nowhere", "n_dp"] >= 1


def test_yes_no_column_sums_as_whole_numbers(people):
    answered = people.assign(happy=people["happiness"] >= 6)
    release = dp_sums(answered, "district", "happy", (0, 1), 1.0, groups=GROUPS)
    assert release.mechanism == "discrete Laplace"
    assert (release.table["scale"] == 1.0).all()


# --------------------------------------------------------------------------- bad input


def test_groups_must_be_public(people, happiness):
    with pytest.raises(ValueError, match="public list of groups"):
        dp_counts(people, "district", 1.0)
    # A categorical column's declared categories are public.
    release = dp_counts(happiness, "district_code", 1.0)
    assert len(release.table) == 6


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epsilon": 0}, ValueError, "positive"),
        ({"epsilon": "lots"}, TypeError, "number"),
        ({"bounds": (10, 0)}, ValueError, "lower < upper"),
        ({"bounds": 10}, TypeError, "pair"),
        ({"bounds": (0, math.inf)}, ValueError, "finite"),
        ({"level": 95}, ValueError, "between 0 and 1"),
        ({"value": "nowhere"}, KeyError, "not in the data"),
        ({"groups": []}, ValueError, "empty"),
        ({"groups": ["a", "a"]}, ValueError, "duplicates"),
    ],
)
def test_bad_arguments_say_what_to_fix(people, kwargs, error, match):
    args = {"data": people, "by": "district", "value": "happiness", "bounds": (0, 10),
            "epsilon": 1.0, "groups": GROUPS, "level": 0.95}
    args.update(kwargs)
    with pytest.raises(error, match=match) as info:
        dp_sums(args.pop("data"), args.pop("by"), args.pop("value"), args.pop("bounds"),
                args.pop("epsilon"), **args)
    assert " / " in str(info.value)


def test_other_bad_inputs(people):
    with pytest.raises(TypeError, match="DataFrame"):
        dp_counts(people.to_dict(), "district", 1.0, groups=GROUPS)
    with pytest.raises(TypeError, match="numbers"):
        dp_sums(people, "district", "district", (0, 10), 1.0, groups=GROUPS)
    gap = people.assign(district=people["district"].where(people.index > 0))
    with pytest.raises(ValueError, match="NaN"):
        dp_counts(gap, "district", 1.0, groups=GROUPS)
    with pytest.raises(ValueError, match="count_share"):
        dp_means(people, "district", "happiness", (0, 10), 1.0, groups=GROUPS, count_share=1.0)
    with pytest.raises(TypeError, match="PrivacyBudget"):
        dp_counts(people, "district", 1.0, groups=GROUPS, budget=1.0)
    with pytest.raises(ValueError, match="positive"):
        PrivacyBudget(-1)
    with pytest.raises(ValueError, match="whole number"):
        PrivacyBudget(1.0).split_evenly(0)
    with pytest.raises(TypeError, match="compare_with_sampling_error"):
        smallest_epsilon(pd.DataFrame({"x": [1]}))
