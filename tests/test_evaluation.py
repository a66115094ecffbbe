"""sscity.evaluation: sample sizes against Cohen (1988) and textbook closed forms, power against
statsmodels, the difference-in-differences against hand-computed cell means and sandwich
variances, and the Hussey & Hughes (2007) stepped-wedge variance against a brute-force GLS
computation of the same model (no published worked example is checked here); the synthetic pilot
panel against its documented formula, and the exact Poisson rate interval against statsmodels
(``exact-c``) and the Poisson tail probabilities at its bounds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sscity.evaluation import (
    PANEL_COMMON_TREND,
    DidResult,
    cluster_design_effect,
    did_estimate,
    minimum_detectable_effect,
    minimum_detectable_proportion,
    poisson_rate_interval,
    required_n,
    required_n_proportions,
    simulate_pilot_panel,
    stepped_wedge_mde,
    stepped_wedge_power,
    stepped_wedge_schedule,
    stepped_wedge_variance,
)
from statsmodels.stats.power import NormalIndPower, TTestIndPower

Z975 = stats.norm.ppf(0.975)
Z80 = stats.norm.ppf(0.8)


# ------------------------------------------------------------------------ two-group power
def test_required_n_matches_cohen_table_for_t_test():
    # Cohen (1988), Statistical Power Analysis, Table 2.4.1: d = .50, a2 = .05, power .80 -> n = 64.
    assert required_n(0.5) == 64
    # d = .80 -> 26 (same table). For d = .20 the table says 393: Cohen's tables use an
    # approximation to the noncentral t; the exact solution is 393.4, so 394 people.
    assert required_n(0.8) == 26
    assert required_n(0.2) - 393 == 1


def test_required_n_normal_matches_closed_form():
    # n = 2 (z_{1-a/2} + z_{1-b})^2 sigma^2 / delta^2 = 62.79 -> 63 per arm for delta/sigma = 0.5.
    closed = 2 * (Z975 + Z80) ** 2 / 0.5**2
    assert closed == pytest.approx(62.79, abs=0.01)
    assert required_n(0.5, test="normal") == 63
    # on the outcome's scale: delta = 5 points, sd = 10 is the same standardised effect
    assert required_n(5, sd=10, test="normal") == 63
    assert required_n(-5, sd=10, test="normal") == 63
    # unequal arms: n1 = (1 + 1/k) (z + z)^2 / d^2
    assert required_n(0.5, ratio=2, test="normal") == math.ceil(1.5 * (Z975 + Z80) ** 2 / 0.25)


def test_design_effect_inflates_people():
    assert cluster_design_effect(21, 0.05) == pytest.approx(2.0)
    assert cluster_design_effect(1, 0.3) == 1.0
    n_eff = TTestIndPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8, ratio=1)
    assert required_n(0.5, icc=0.05, cluster_size=21) == math.ceil(2 * n_eff)


def test_minimum_detectable_effect_against_statsmodels_and_closed_form():
    d = TTestIndPower().solve_power(nobs1=100, alpha=0.05, power=0.8, ratio=1)
    assert minimum_detectable_effect(100, sd=2.0) == pytest.approx(2.0 * d, rel=1e-9)
    # normal approximation: MDE = (z + z) sigma sqrt(1/n1 + 1/n2)
    assert minimum_detectable_effect(100, sd=2.0, test="normal") == pytest.approx(
        (Z975 + Z80) * 2.0 * math.sqrt(2 / 100), rel=1e-5
    )  # statsmodels adds the far tail
    # clusters: 400 people in clusters of 11 with ICC .1 -> 200 effective people
    assert minimum_detectable_effect(400, icc=0.1, cluster_size=11, test="normal") == pytest.approx(
        (Z975 + Z80) * math.sqrt(2 / 200), rel=1e-5
    )
    # power of a t-test at the MDE is the power asked for (statsmodels forward direction)
    mde = minimum_detectable_effect(80, ratio=1.5, alpha=0.01, power=0.9)
    assert TTestIndPower().power(mde, nobs1=80, alpha=0.01, ratio=1.5) == pytest.approx(0.9, abs=1e-6)


def test_required_n_and_mde_are_inverse():
    for n in (30, 64, 250):
        mde = minimum_detectable_effect(n)
        assert required_n(mde) == n


def test_proportions_use_cohens_h():
    p0, p1 = 0.50, 0.65
    h = 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0))
    expected = math.ceil(2 * (Z975 + Z80) ** 2 / h**2)
    assert required_n_proportions(p0, p1) == expected
    assert required_n_proportions(p1, p0) == expected
    assert required_n_proportions(p0, p1, icc=0.02, cluster_size=26) == math.ceil(
        2 * (Z975 + Z80) ** 2 / h**2 * 1.5
    )
    # the detectable proportion with that many people is at most p1, and close to it
    n = required_n_proportions(p0, p1)
    p = minimum_detectable_proportion(p0, n)
    assert p0 < p <= p1 and p == pytest.approx(p1, abs=0.002)
    h_n = NormalIndPower().solve_power(nobs1=200, alpha=0.05, power=0.8, ratio=1)
    down = minimum_detectable_proportion(0.3, 200, direction="decrease")
    assert 2 * math.asin(math.sqrt(0.3)) - 2 * math.asin(math.sqrt(down)) == pytest.approx(h_n)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: required_n(0), ValueError, "zero"),
        (lambda: required_n(0.5, sd=0), ValueError, "sd must be positive"),
        (lambda: required_n(0.5, alpha=1.2), ValueError, "alpha must be strictly"),
        (lambda: required_n(0.5, power=0.01), ValueError, "must exceed alpha"),
        (lambda: required_n(0.5, test="z"), ValueError, "test must be one of"),
        (lambda: required_n("0.5"), TypeError, "must be a number"),
        (lambda: required_n(float("nan")), ValueError, "finite"),
        (lambda: required_n(0.5, icc=1.5, cluster_size=3), ValueError, "icc"),
        (lambda: required_n(0.5, cluster_size=0), ValueError, "cluster_size"),
        (lambda: minimum_detectable_effect(-5), ValueError, "n_per_arm must be positive"),
        (lambda: minimum_detectable_effect(3, icc=0.5, cluster_size=5), ValueError, "too small"),
        (lambda: required_n_proportions(0.3, 0.3), ValueError, "equal"),
        (lambda: required_n_proportions(0, 0.3), ValueError, "p_control"),
        (lambda: minimum_detectable_proportion(0.99, 20), ValueError, "no proportion"),
        (lambda: minimum_detectable_proportion(0.5, 20, direction="up"), ValueError, "direction"),
    ],
)
def test_bad_power_inputs_are_bilingual(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert " / " in str(info.value) and any("\u3040" <= ch <= "\u9fff" for ch in str(info.value))


# ------------------------------------------------------------------- difference in differences
def _panel() -> pd.DataFrame:
    # hand-made: 2 comparison districts, 2 pilot districts, 3 residents each, before/after
    rows = []
    values = {
        ("A", 0, 0): [5.0, 6.0, 7.0],
        ("A", 0, 1): [6.0, 7.0, 8.5],
        ("B", 0, 0): [4.0, 5.5, 6.0],
        ("B", 0, 1): [5.0, 6.0, 7.5],
        ("C", 1, 0): [5.0, 5.0, 6.5],
        ("C", 1, 1): [7.5, 8.0, 8.0],
        ("D", 1, 0): [6.0, 6.5, 7.0],
        ("D", 1, 1): [8.0, 9.5, 9.0],
    }
    for (district, pilot, after), ys in values.items():
        rows += [{"district": district, "pilot": pilot, "after": bool(after), "happy": y} for y in ys]
    return pd.DataFrame(rows)


def test_did_equals_difference_of_cell_means():
    frame = _panel()
    means = frame.groupby(["pilot", "after"])["happy"].mean()
    hand = (means[1, True] - means[1, False]) - (means[0, True] - means[0, False])
    result = did_estimate(frame, "happy", "pilot", "after")
    assert isinstance(result, DidResult)
    assert result.estimate == pytest.approx(hand, abs=1e-12)
    # classical SE: pooled within-cell variance times the sum of 1/n over the four cells
    cells = frame.groupby(["pilot", "after"])["happy"]
    s2 = ((frame["happy"] - cells.transform("mean")) ** 2).sum() / (len(frame) - 4)
    se = math.sqrt(s2 * (1 / cells.size()).sum())
    assert result.se == pytest.approx(se, rel=1e-10)
    t = stats.t.ppf(0.975, len(frame) - 4)
    assert (result.lower, result.upper) == pytest.approx((hand - t * se, hand + t * se), rel=1e-10)
    assert result.n == 24 and result.n_clusters is None


def test_did_cluster_robust_matches_hand_sandwich():
    frame = _panel()
    result = did_estimate(frame, "happy", "pilot", "after", cluster="district", level=0.9)
    g = frame["pilot"].to_numpy(float)
    p = frame["after"].to_numpy(float)
    X = np.column_stack([np.ones_like(g), g, p, g * p])
    y = frame["happy"].to_numpy(float)
    bread = np.linalg.inv(X.T @ X)
    beta = bread @ X.T @ y
    u = y - X @ beta
    meat = sum(
        np.outer(X[idx].T @ u[idx], X[idx].T @ u[idx]) for idx in frame.groupby("district").indices.values()
    )
    n, k, n_g = len(y), 4, 4
    cov = bread @ meat @ bread * n_g / (n_g - 1) * (n - 1) / (n - k)  # CR1, as Stata
    se = math.sqrt(cov[3, 3])
    assert result.estimate == pytest.approx(beta[3])
    assert result.se == pytest.approx(se, rel=1e-9)
    t = stats.t.ppf(0.95, n_g - 1)
    assert result.upper - result.lower == pytest.approx(2 * t * se, rel=1e-9)
    assert result.n_clusters == 4 and "cluster" in result.method


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "match"),
    [
        (lambda f: f.drop(columns="pilot"), {}, ValueError, "not in the frame"),
        (lambda f: f.assign(pilot=f["pilot"] * 2), {}, ValueError, "0/1"),
        (lambda f: f.assign(happy=np.where(f.index == 0, np.nan, f["happy"])), {}, ValueError, "missing"),
        (lambda f: f[~((f["pilot"] == 1) & f["after"])], {}, ValueError, "four cells"),
        (lambda f: f.assign(district="A"), {"cluster": "district"}, ValueError, "at least 2 clusters"),
        (lambda f: f.to_dict(), {}, TypeError, "DataFrame"),
    ],
)
def test_did_bad_inputs_are_bilingual(change, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        did_estimate(change(_panel()), "happy", "pilot", "after", **kwargs)
    assert " / " in str(info.value)


# ------------------------------------------------------------------------------ stepped wedge
def test_schedule_is_a_balanced_deterministic_staircase():
    s = stepped_wedge_schedule(10, 4, seed=7)
    assert s.shape == (10, 5) and list(s.columns) == [0, 1, 2, 3, 4]
    assert (s[0] == 0).all() and (s[4] == 1).all()
    assert (np.diff(s.to_numpy(), axis=1) >= 0).all()  # once crossed over, stays
    first = s.to_numpy().argmax(axis=1)
    assert sorted(np.bincount(first, minlength=5)[1:]) == [2, 2, 3, 3]
    pd.testing.assert_frame_equal(s, stepped_wedge_schedule(10, 4, seed=7))
    assert not s.equals(stepped_wedge_schedule(10, 4, seed=8))


def _gls_variance(X: np.ndarray, s2: float, tau2: float) -> float:
    """Var(theta) by brute force: GLS on cluster-period means with fixed period effects and a
    random cluster intercept, [(Z' V^-1 Z)^-1]_{theta, theta}."""
    n_i, n_t = X.shape
    rows = []
    for i in range(n_i):
        for t in range(n_t):
            rows.append([1.0] + [1.0 if t == j else 0.0 for j in range(1, n_t)] + [X[i, t]])
    Z = np.array(rows)
    block = s2 * np.eye(n_t) + tau2 * np.ones((n_t, n_t))
    V_inv = np.kron(np.eye(n_i), np.linalg.inv(block))
    return float(np.linalg.inv(Z.T @ V_inv @ Z)[-1, -1])


@pytest.mark.parametrize(
    ("n_clusters", "n_steps", "icc", "m"),
    [(12, 4, 0.05, 25), (9, 3, 0.2, 10), (7, 6, 0.01, 50), (20, 5, 0.0, 8)],
)
def test_hussey_hughes_variance_equals_brute_force_gls(n_clusters, n_steps, icc, m):
    schedule = stepped_wedge_schedule(n_clusters, n_steps, seed=n_clusters)
    sd = 2.0
    s2, tau2 = sd**2 * (1 - icc) / m, sd**2 * icc
    expected = _gls_variance(schedule.to_numpy(float), s2, tau2)
    assert stepped_wedge_variance(schedule, sd, icc, m) == pytest.approx(expected, rel=1e-9)


def test_hussey_hughes_parallel_design_is_the_cluster_trial_variance():
    # one period, half the clusters treated: Var = 4 (s2 + tau2) / I (Donner & Klar 2000)
    X = np.array([[1]] * 6 + [[0]] * 6)
    sd, icc, m = 1.5, 0.1, 30
    s2, tau2 = sd**2 * (1 - icc) / m, sd**2 * icc
    assert stepped_wedge_variance(X, sd, icc, m) == pytest.approx(4 * (s2 + tau2) / 12, rel=1e-12)
    # which is the individually randomised variance times the design effect
    people = 6 * m
    assert stepped_wedge_variance(X, sd, icc, m) == pytest.approx(
        2 * sd**2 / people * cluster_design_effect(m, icc), rel=1e-12
    )


def test_stepped_wedge_power_and_mde_agree():
    schedule = stepped_wedge_schedule(12, 4, seed=3)
    var = stepped_wedge_variance(schedule, 1.0, 0.05, 20)
    assert stepped_wedge_power(0.3, schedule, 1.0, 0.05, 20) == pytest.approx(
        stats.norm.cdf(0.3 / math.sqrt(var) - Z975)
    )
    mde = stepped_wedge_mde(schedule, 1.0, 0.05, 20, power=0.9)
    assert stepped_wedge_power(mde, schedule, 1.0, 0.05, 20) == pytest.approx(0.9)
    # more people per cluster-period never lowers power
    assert stepped_wedge_power(0.2, schedule, 1.0, 0.05, 40) > stepped_wedge_power(
        0.2, schedule, 1.0, 0.05, 20
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: stepped_wedge_schedule(3, 4, seed=1), ValueError, "at least n_steps"),
        (lambda: stepped_wedge_schedule(5, 0, seed=1), ValueError, "n_steps must be at least 1"),
        (lambda: stepped_wedge_schedule(5, 2, seed=None), TypeError, "seed must be an integer"),
        (lambda: stepped_wedge_variance([[0, 1], [0, 1]], 1, 0.1, 5), ValueError, "cannot separate"),
        (lambda: stepped_wedge_variance([[0, 2], [0, 1]], 1, 0.1, 5), ValueError, "only 0"),
        (lambda: stepped_wedge_variance([[0, 1]], 1, 0.1, 5), ValueError, "at least 2 clusters"),
        (lambda: stepped_wedge_variance([[0, 1], [1, 1]], 1, 1.0, 5), ValueError, "icc"),
        (lambda: stepped_wedge_power(0.2, [[0, 1], [1, 1]], 1, 0.1, 5, alpha=0), ValueError, "alpha"),
    ],
)
def test_stepped_wedge_bad_inputs_are_bilingual(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert " / " in str(info.value)


# ------------------------------------------------------------------------- synthetic pilot panel
def test_pilot_panel_shape_and_determinism():
    panel = simulate_pilot_panel(3, n_clusters_per_arm=3, people_per_cluster=5)
    assert list(panel.columns) == ["person_id", "cluster", "group", "round", "after", "wellbeing"]
    assert len(panel) == 2 * 3 * 5 * 3 and panel["person_id"].nunique() == 30
    assert panel.groupby("person_id")["round"].apply(list).map(lambda r: r == [-1, 0, 1]).all()
    assert (panel["after"] == (panel["round"] == 1)).all()
    assert panel.groupby("cluster")["group"].nunique().eq(1).all()
    assert panel["wellbeing"].between(0, 10).all()
    pd.testing.assert_frame_equal(panel, simulate_pilot_panel(3, n_clusters_per_arm=3, people_per_cluster=5))
    assert not panel.equals(simulate_pilot_panel(4, n_clusters_per_arm=3, people_per_cluster=5))


def test_pilot_panel_recovers_effect_and_pre_trend():
    # large, unclipped-in-practice panel: cell means follow the documented formula
    big = dict(n_clusters_per_arm=40, people_per_cluster=200, sd=1.0, icc=0.02, baseline=5.0)
    panel = simulate_pilot_panel(11, effect=0.6, pre_trend=0.3, **big)
    means = panel.groupby(["group", "round"])["wellbeing"].mean()
    did = (means[1, 1] - means[1, 0]) - (means[0, 1] - means[0, 0])
    pre = (means[1, 0] - means[1, -1]) - (means[0, 0] - means[0, -1])
    assert did == pytest.approx(0.6 + 0.3, abs=0.08)  # effect plus the pre-trend's continuation
    assert pre == pytest.approx(0.3, abs=0.08)
    assert means[0, 1] - means[0, 0] == pytest.approx(PANEL_COMMON_TREND, abs=0.08)
    # the cluster-robust DiD of a modest panel covers the true effect, and icc shows in the clusters
    small = simulate_pilot_panel(5, effect=0.5)
    result = did_estimate(small[small["round"] >= 0], "wellbeing", "group", "after", cluster="cluster")
    assert result.n_clusters == 8 and result.lower < 0.5 < result.upper


# ------------------------------------------------------------------ exact Poisson rate intervals
@pytest.mark.parametrize(("k", "exposure"), [(0, 2.0), (1, 1.0), (7, 3.5), (40, 12.0)])
def test_poisson_interval_matches_statsmodels_and_tail_probabilities(k, exposure):
    from statsmodels.stats.rates import confint_poisson

    lo, hi = poisson_rate_interval(k, exposure, level=0.9)
    sm_lo, sm_hi = confint_poisson(k, exposure, method="exact-c", alpha=0.1)
    assert (lo, hi) == pytest.approx((float(sm_lo), float(sm_hi)), rel=1e-9, abs=1e-12)
    # by definition: at the bounds the Poisson tail beyond k has probability alpha/2
    assert stats.poisson.cdf(k, hi * exposure) == pytest.approx(0.05, rel=1e-7)
    if k > 0:
        assert stats.poisson.sf(k - 1, lo * exposure) == pytest.approx(0.05, rel=1e-7)
    # one-sided bounds put the whole alpha in one tail
    one_lo, inf = poisson_rate_interval(k, exposure, level=0.95, side="lower")
    zero, one_hi = poisson_rate_interval(k, exposure, level=0.95, side="upper")
    assert inf == math.inf and zero == 0.0
    assert (one_lo, one_hi) == pytest.approx((lo, hi), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: poisson_rate_interval(2.5, 1.0), ValueError, "whole number"),
        (lambda: poisson_rate_interval(-1, 1.0), ValueError, "whole number"),
        (lambda: poisson_rate_interval("3", 1.0), TypeError, "events must be a number"),
        (lambda: poisson_rate_interval(3, 0.0), ValueError, "exposure must be positive"),
        (lambda: poisson_rate_interval(3, 1.0, side="left"), ValueError, "side must be one of"),
        (lambda: simulate_pilot_panel(1, n_clusters_per_arm=1), ValueError, "at least 2"),
        (lambda: simulate_pilot_panel(None), TypeError, "seed must be an integer"),
        (lambda: simulate_pilot_panel(1, icc=1.0), ValueError, "icc"),
    ],
)
def test_panel_and_poisson_bad_inputs_are_bilingual(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert " / " in str(info.value) and any("\u3040" <= ch <= "\u9fff" for ch in str(info.value))


def test_mde_and_n_are_numbers_where_statsmodels_answers_with_an_array():
    # solve_power returned a 1-element array here, and float() of it raised
    mde = minimum_detectable_effect(190, 0.95)
    assert isinstance(mde, float) and 0.2 < mde < 0.35
    assert required_n(mde, 0.95) in (190, 191)
