"""Social impact bonds: Hachioji's published payments, the step-vs-linear error, and IRR.

Published figures (Hachioji City's SIB for colorectal-cancer screening, 2017-2019):
- Nikkei BP 新・公民連携最前線, 7 Dec 2020, on the city's final report
  (https://project.nikkeibp.co.jp/atclppp/PPP/news/120701799/): screening 26.8 % against a
  top target of 19 % -> the full ¥2,441,000; follow-up exams 82.1 % (lower target 79 %, upper
  87.0 %) -> ¥2,960,000 of at most ¥4,880,000; additional early cancers (>= 1): not met; city
  budget cap ¥9,762,000.
- Nikkei BP, 28 Oct 2018 (https://project.nikkeibp.co.jp/atclppp/PPP/news/102800929/): the
  FY2015 baseline screening rate was 9 %.
- 事業構想 (projectdesign.jp, Nov 2020): the city paid 540万円 in all.
"""

from __future__ import annotations

import math

import pytest
from scipy.optimize import brentq
from sscity.governance.sib import (
    HACHIOJI_CITY_CAP_YEN,
    HACHIOJI_OUTCOMES,
    PayoutSchedule,
    Step,
    hachioji_schedules,
    irr,
    irr_all,
    npv,
    outcome_payments,
    simple_return,
)


def test_hachioji_published_payments_and_total():
    schedules = hachioji_schedules()
    assert schedules["screening"].payout(26.8) == 2_441_000  # full: 26.8 % > top target 19 %
    assert schedules["follow_up"].payout(82.1) == 2_960_000  # of at most 4,880,000
    assert schedules["follow_up"].cap == 4_880_000
    assert schedules["early_cancers"].payout(0) == 0  # target of >= 1 not met
    frame = outcome_payments(schedules, HACHIOJI_OUTCOMES, cap=HACHIOJI_CITY_CAP_YEN)
    assert frame["payment"].sum() == 5_401_000  # "540万円"
    assert round(frame["payment"].sum() / 1e6, 2) == 5.40
    # The three caps add up to the city's budget cap (the early-cancer cap is derived so).
    assert frame["max_payment"].sum() == HACHIOJI_CITY_CAP_YEN == 9_762_000


def test_linear_interpolation_would_wrongly_give_1_89_million_for_follow_up():
    follow_up = hachioji_schedules()["follow_up"]
    linear = follow_up.linear_payout(82.1)  # 0 at the 79 % lower target, full at 87 %
    assert linear == pytest.approx(4_880_000 * (82.1 - 79) / (87 - 79))
    assert round(linear / 1e6, 2) == 1.89
    assert follow_up.payout(82.1) - linear == pytest.approx(1_069_000)


def test_steps_say_where_they_come_from():
    schedules = hachioji_schedules()
    follow = schedules["follow_up"].table()
    assert set(follow.loc[follow["source"] == "published", "threshold"]) == {82.0, 87.0}
    assert (schedules["screening"].table()["source"] == "assumed").sum() == 9
    assert schedules["early_cancers"].steps[0].source == "derived"


def test_schedule_is_a_step_function_not_a_line():
    s = PayoutSchedule([(10, 100), (20, 300)])
    assert [s.payout(x) for x in (0, 9.999, 10, 15, 19.999, 20, 99)] == [0, 0, 100, 100, 100, 300, 300]
    assert s.linear_payout(15) == pytest.approx(150)
    assert s.linear_payout(5) == 0 and s.linear_payout(25) == 300


@pytest.mark.parametrize("steps", [[], [(20, 100), (10, 200)], [(10, 300), (20, 100)], [(10, -1)],
                                   [(10, float("nan"))], [("ten", 1)], [(1,)], [Step(1, 1, "guess")]])
def test_bad_schedules_are_refused_with_a_reason(steps):
    with pytest.raises(ValueError, match=" / "):
        PayoutSchedule(steps)


def test_outcome_payments_needs_every_outcome_and_respects_the_cap():
    schedules = hachioji_schedules()
    with pytest.raises(ValueError, match="follow_up"):
        outcome_payments(schedules, {"screening": 20, "early_cancers": 0})
    with pytest.raises(ValueError, match="cap"):
        outcome_payments(schedules, HACHIOJI_OUTCOMES, cap=5_000_000)
    with pytest.raises(ValueError):
        hachioji_schedules()["screening"].payout("high")


# -- returns ----------------------------------------------------------------------------------
def test_simple_return():
    assert simple_return(1_000_000, 1_080_000) == pytest.approx(0.08)
    assert simple_return(100, 0) == -1
    for bad in [(0, 10), (-5, 10), (10, -1)]:
        with pytest.raises(ValueError):
            simple_return(*bad)


def test_irr_one_period_matches_the_closed_form():
    # One period: -P + Q / (1 + r) = 0  =>  r = Q / P - 1 (the simple return).
    for outlay, payout in [(100, 110), (8_874_000, 5_401_000), (50, 200)]:
        assert irr([-outlay, payout]) == pytest.approx(payout / outlay - 1, abs=1e-9)
        assert irr([-outlay, payout]) == pytest.approx(simple_return(outlay, payout), abs=1e-9)


def test_irr_two_periods_matches_the_quadratic_formula():
    # -100 + 50 x + 60 x^2 = 0 with x = 1 / (1 + r): x = (-50 + sqrt(50^2 + 4*60*100)) / 120.
    x = (-50 + math.sqrt(50**2 + 4 * 60 * 100)) / (2 * 60)
    assert irr([-100, 50, 60]) == pytest.approx(1 / x - 1, abs=1e-9)


@pytest.mark.parametrize("flows, expected", [
    # numpy-financial's documented examples of npf.irr (numpy_financial.irr docstring).
    ([-100, 39, 59, 55, 20], 0.28095),
    ([-100, 0, 0, 74], -0.0955),
    ([-100, 100, 0, -7], -0.0833),
    ([-100, 100, 0, 7], 0.06206),
    ([-5, 10.5, 1, -8, 1], 0.0886),
])
def test_irr_matches_numpy_financial_documented_values(flows, expected):
    assert round(irr(flows), len(str(expected).split(".")[1])) == expected


def test_irr_with_irregular_times_matches_an_independent_root_finder():
    flows, times = [-8_874_000, 2_441_000, 2_960_000], [0.0, 1.5, 2.3]
    reference = brentq(lambda r: sum(c / (1 + r) ** t for c, t in zip(flows, times, strict=True)),
                       -0.99, 10, xtol=1e-14)
    assert irr(flows, times) == pytest.approx(reference, abs=1e-9)
    assert npv(irr(flows, times), flows, times) == pytest.approx(0, abs=1e-3)


def test_irr_refuses_flows_without_a_sign_change():
    with pytest.raises(ValueError, match=" / "):
        irr([100, 10])
    with pytest.raises(ValueError, match=" / "):
        irr([-100])
    with pytest.raises(ValueError, match=" / "):
        irr([-100, 110], times=[0])
    with pytest.raises(ValueError, match=" / "):
        irr([-100, 1], low=0.0, high=1.0)  # the root (-0.99) is outside the bracket
    with pytest.raises(ValueError):
        npv(-1, [-100, 110])


def test_irr_all_finds_every_root_of_non_conventional_flows():
    # Roots of the NPV polynomial sum c_t x^t, x = 1 / (1 + r), computed with numpy.roots.
    import numpy as np

    flows = [-5, 10.5, 1, -8, 1]
    x = np.roots(flows[::-1])
    x = x[np.abs(x.imag) < 1e-12].real
    expected = sorted(1 / x[x > 0] - 1)
    expected = [r for r in expected if -0.99 <= r <= 10]
    assert irr_all(flows) == pytest.approx(expected, abs=1e-9)
    assert irr(flows) == pytest.approx(min(expected, key=abs), abs=1e-9)
