"""PIA after ISO/IEC 29134: threshold analysis, flows, register, report, and the feeds of 02-04."""

from __future__ import annotations

from html.parser import HTMLParser

import mistune
import numpy as np
import pandas as pd
import pytest
from sscity.governance.pia import (
    CRITERIA,
    FLOW_STAGES,
    PIA,
    PIIFlow,
    Risk,
    RiskRegister,
    SystemDescription,
    band,
    consent_ledger_feed,
    mobility_pilot_feed,
    sensor_feed,
    threshold_analysis,
)
from sscity.governance.trl import stage_for
from sscity.mobility.episode import EpisodeResult
from sscity.mobility.routing import PROFILES
from sscity.platform.consent import ConsentLedger

# Article 29 Working Party, Guidelines on Data Protection Impact Assessment (WP248 rev.01,
# 4 Oct 2017, endorsed by the EDPB), section III.B.a: its table of examples, with the
# criteria it names and whether a DPIA is likely required ("two or more criteria").
WP248_EXAMPLES = [
    ("hospital processing patients' genetic and health data",
     {"sensitive", "vulnerable", "large_scale"}, True),
    ("camera system analysing driving behaviour on highways, reading plates",
     {"monitoring", "new_technology"}, True),
    ("company systematically monitoring its employees' activities", {"monitoring", "vulnerable"}, True),
    ("gathering public social media data to generate profiles",
     {"profiling", "large_scale", "matching", "sensitive"}, True),
    ("national credit rating or fraud database",
     {"profiling", "automated_decision", "blocks_rights", "sensitive"}, True),
    ("online magazine mailing a generic daily digest", {"large_scale"}, False),
    ("e-commerce site with limited profiling for vintage car part adverts", {"profiling"}, False),
]


@pytest.mark.parametrize("name, criteria, required", WP248_EXAMPLES, ids=[e[0][:30] for e in WP248_EXAMPLES])
def test_threshold_analysis_reproduces_wp248_examples(name, criteria, required):
    answers = {"pii": True, **{c.id: c.id in criteria for c in CRITERIA}}
    result = threshold_analysis(answers)
    assert result.needed is required, name
    assert sorted(result.met) == sorted(criteria)
    assert all(" / " in reason for reason in result.reasons)
    assert list(result.table().index)[0] == "pii"


def test_threshold_without_personal_information_and_with_a_stricter_city_rule():
    assert not threshold_analysis({"pii": False, "monitoring": True}).needed
    one = {"pii": True, "new_technology": True}
    assert not threshold_analysis(one).needed
    assert "record why" in threshold_analysis(one).reasons[0]
    assert threshold_analysis(one, min_criteria=1).needed  # "assess every new technology"
    assert any("Not answered" in r for r in threshold_analysis(one).reasons)


@pytest.mark.parametrize("answers, kwargs", [
    ({"monitoring": True}, {}), ({"pii": "yes"}, {}), ({"pii": True, "cctv": True}, {}),
    ([("pii", True)], {}),
    ({"pii": True}, {"min_criteria": 0}), ({"pii": True}, {"min_criteria": True}),
])
def test_bad_threshold_input_is_refused_with_a_reason(answers, kwargs):
    with pytest.raises(ValueError, match=" / "):
        threshold_analysis(answers, **kwargs)


def test_scores_and_bands():
    assert [band(s) for s in (1, 3, 4, 6, 8, 9, 16)] == [
        "low", "low", "medium", "medium", "high", "high", "high"]
    risk = Risk("R1", "Trace reveals home", "store", likelihood=3, impact=4, treatment="coarsen to 1 km",
                residual_likelihood=1, residual_impact=4)
    assert (risk.score, risk.band, risk.residual_score, risk.residual_band, risk.treated) == (
        12, "high", 4, "medium", True)
    assert not Risk("R2", "x", "use").treated


@pytest.mark.parametrize("fields", [
    dict(likelihood=5), dict(impact=0), dict(likelihood=2.0), dict(stage="archive"), dict(title=""),
    dict(residual_likelihood=1), dict(likelihood=1, impact=1, residual_likelihood=2, residual_impact=2),
])
def test_bad_risks_are_refused_with_a_reason(fields):
    base = dict(id="R1", title="t", stage="use")
    with pytest.raises(ValueError, match=" / "):
        Risk(**{**base, **fields})
    with pytest.raises(ValueError, match=" / "):
        band(17)


def test_register_table_and_matrix():
    register = RiskRegister([Risk("A", "a", "collect", 1, 2), Risk("B", "b", "store", 4, 4)])
    register.add(id="C", title="c", stage="share", likelihood=2, impact=2)
    frame = register.to_dataframe()
    assert list(frame["id"]) == ["B", "C", "A"]  # highest score first
    assert list(frame["score"]) == [16, 4, 2] and list(frame["band"]) == ["high", "medium", "low"]
    matrix = register.matrix()
    assert matrix.loc[4, 4] == 1 and matrix.loc[1, 2] == 1 and matrix.to_numpy().sum() == 3
    assert list(matrix.index) == [4, 3, 2, 1]
    with pytest.raises(ValueError, match=" / "):
        register.add(Risk("A", "again", "use"))
    with pytest.raises(ValueError, match=" / "):
        register.add("not a risk")
    assert register["C"].score == 4


def test_flows_need_a_stage_items_actors_and_a_basis():
    with pytest.raises(ValueError, match=" / "):
        PIIFlow("archive", ("x",), ("y",), "consent")
    with pytest.raises(ValueError, match=" / "):
        PIIFlow("use", (), ("y",), "consent")
    with pytest.raises(ValueError, match=" / "):
        PIIFlow("use", ("x",), ("y",), "")
    system = SystemDescription("s", "p", "c", flows=[PIIFlow("use", "x", "y", "consent")])
    assert system.missing_stages() == ["collect", "store", "share", "delete"]
    with pytest.raises(ValueError, match=" / "):
        SystemDescription("s", "p", "c", flows=["collect everything"])


# -- feeds -------------------------------------------------------------------------------------
def _ledger() -> ConsentLedger:
    ledger = ConsentLedger()
    ledger.grant("r1", "ondemand-bus", "booking", at="2024-05-01T09:00:00Z")
    ledger.check_access("r1", "ondemand-bus", "booking", at="2024-05-01T10:00:00Z")
    ledger.check_access("r1", "ondemand-bus", "booking", at="2024-05-01T11:00:00Z")
    ledger.check_access("r2", "clinic", "checkup", at="2024-05-01T12:00:00Z")
    ledger.revoke("r1", "ondemand-bus", "booking", at="2024-05-02T09:00:00Z")
    return ledger


def test_consent_ledger_feed_describes_what_the_ledger_holds():
    feed = consent_ledger_feed(_ledger())
    assert feed.facts["records"] == 5 and feed.facts["residents"] == 2
    assert feed.facts["n_access-allowed"] == 2 and feed.facts["n_access-denied"] == 1
    assert feed.facts["chain_intact"]
    shares = [f for f in feed.flows if f.stage == "share"]
    assert [(f.actors, f.purpose) for f in shares] == [(("ondemand-bus",), "booking")]
    assert "27(1)" in shares[0].legal_basis
    assert {f.stage for f in feed.flows} == set(FLOW_STAGES)
    assert [r.id for r in feed.risks] == ["CL-S1", "CL-D", "CL-R"]
    assert all(r.assumed and (r.likelihood, r.impact) == (2, 2) for r in feed.risks)
    assert "clinic (1)" in feed.risks[1].title
    with pytest.raises(ValueError, match=" / "):
        consent_ledger_feed([])


def test_sensor_feed_follows_the_fields_a_station_sends():
    full = sensor_feed(stations={7: (140.1, 36.1), 8: (140.11, 36.11)})
    assert full.facts["stations"] == 2 and full.facts["people_count"]
    assert [r.id for r in full.risks] == ["SN-1"] and full.risks[0].assumed
    assert full.flows[0].stage == "collect"

    class GatewayLike:
        stations = {1: (140.0, 36.0)}

    assert sensor_feed(stations=GatewayLike()).facts["stations"] == 1
    climate = sensor_feed(fields=["temperature_c", "humidity_pct", "pm25_ugm3"])
    assert climate.risks == [] and "collect" not in {f.stage for f in climate.flows}
    with pytest.raises(ValueError, match=" / "):
        sensor_feed(fields=["mac_address"])


def _episode(n_steps: int = 21, n_pedestrians: int = 4) -> EpisodeResult:
    t = np.arange(n_steps) / 20.0
    columns = ["x_m", "y_m", "theta_rad", "v_user_mps", "omega_user_radps", "v_cmd_mps", "omega_cmd_radps",
               "v_mps", "omega_radps", "min_distance_m", "density_2_5", "density_5", "authority", "contacts",
               "tilt_deg"]
    log = pd.DataFrame({"t_s": t, **{c: np.zeros(n_steps) for c in columns}})
    return EpisodeResult(log=log, pedestrians_xy=np.zeros((n_steps, n_pedestrians, 2)), metrics={},
                         goal_xy=(20.0, 0.0))


def test_mobility_pilot_feed_describes_a_ride_and_the_riders_profile():
    feed = mobility_pilot_feed(_episode(), PROFILES["qolo"])
    assert feed.facts["pedestrians"] == 4
    assert feed.facts["rate_hz"] == 20.0 and feed.facts["duration_s"] == 1.0
    assert "rider's position trace" in feed.facts["recorded"]
    assert [r.id for r in feed.risks] == ["MB-1", "MB-2", "MB-3"]
    sensitive = [f for f in feed.flows if "access profile" in f.data_items[0]]
    assert "2(3)" in sensitive[0].notes and "20(2)" in sensitive[0].legal_basis
    walking = mobility_pilot_feed(_episode().log, "walking")
    assert [r.id for r in walking.risks] == ["MB-1", "MB-2"]  # a log alone: bystanders from its columns
    assert mobility_pilot_feed(None, "manual_wheelchair").risks[0].id == "MB-3"
    with pytest.raises(ValueError, match=" / "):
        mobility_pilot_feed([1, 2, 3])
    with pytest.raises(ValueError, match=" / "):
        mobility_pilot_feed(None, 42)


# -- the assessment, its report, and the TRL gate ----------------------------------------------
def _completed_pia(title: str = "Qolo campus pilot") -> PIA:
    system = SystemDescription(title, "test a standing mobility device on campus paths", "University")
    system.add_flows(mobility_pilot_feed(_episode(), "qolo").flows)
    system.add_flows([PIIFlow("use", "rider's position trace", "operator", "consent"),
                      PIIFlow("share", "none", "nobody", "not applicable"),
                      PIIFlow("delete", "episode logs", "operator", "consent", notes="after 30 days")])
    register = RiskRegister()
    for risk in mobility_pilot_feed(_episode(), "qolo").risks:
        register.add(Risk(risk.id, risk.title, risk.stage, likelihood=3, impact=3, treatment="minimise",
                          residual_likelihood=1, residual_impact=3, source=risk.source))
    threshold = threshold_analysis({"pii": True, "monitoring": True, "sensitive": True, "vulnerable": True})
    return PIA(system, threshold, register, team=["DPO", "lab"], signed_off_by="ethics committee",
               date="2026-12-07")


def test_pia_is_completed_only_when_rated_treated_described_and_signed():
    pia = _completed_pia()
    assert pia.missing() == [] and pia.completed
    assert stage_for(7, pia).stage == "deployment"
    pia.signed_off_by = None
    assert not pia.completed and stage_for(7, pia).stage == "living_lab"
    assumed = PIA(pia.system, pia.threshold, RiskRegister(mobility_pilot_feed(_episode(), "qolo").risks),
                  signed_off_by="x")
    assert any("assumed" in gap for gap in assumed.missing())
    assert PIA(pia.system).missing() == ["Do the threshold analysis. / しきい値分析を行う。"]
    no_pii = PIA(SystemDescription("weather", "p", "c"), threshold_analysis({"pii": False}),
                 signed_off_by="x")
    assert no_pii.completed
    with pytest.raises(ValueError, match=" / "):
        PIA("a system")


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


HOSTILE = 'Pilot <script>alert("x")</script> | A&B'


def test_html_report_escapes_user_text():
    pia = _completed_pia(HOSTILE)
    pia.register.add(Risk("R<9>", "<img src=x onerror=alert(1)>", "use"))
    report = pia.to_html()
    parser = _Collector()
    parser.feed(report)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert HOSTILE in "".join(parser.text)  # shown as text, exactly
    assert {"h1", "h2", "table", "td"} <= set(parser.tags)
    assert pia._repr_html_() == report


def test_markdown_report_renders_with_intact_tables_and_no_raw_html():
    pia = _completed_pia(HOSTILE)
    pia.register.add(Risk("R9", "a | b\nc", "use"))
    markdown = pia.to_markdown()
    assert markdown.startswith("# PIA report / PIA 報告書")
    for heading in ("Threshold analysis / しきい値分析", "PII flows / 個人情報の流れ",
                    "Risk register / リスク台帳"):
        assert f"## {heading}" in markdown
    rendered = mistune.html(markdown)  # the Markdown renderer nbconvert uses
    parser = _Collector()
    parser.feed(rendered)
    assert "script" not in parser.tags
    assert HOSTILE in "".join(parser.text)
    # Every row of the register keeps its 11 cells, although a title holds a pipe.
    register = markdown.split("## Risk register")[1].split("## Status")[0]
    rows = [line for line in register.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(pia.register)
    assert all(line.replace("\\|", "").count("|") == 12 for line in rows)


def test_matrix_plot_draws_counts_on_band_colours():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    register = RiskRegister([Risk("A", "a", "collect", 4, 4, treatment="t", residual_likelihood=1,
                                  residual_impact=2), Risk("B", "b", "use", 4, 4)])
    ax = register.plot_matrix()
    assert [t.get_text() for t in ax.texts] == ["2"]  # both risks in the top-right cell
    assert [t.get_text() for t in register.plot_matrix(residual=True).texts] == ["1"]
    plt.close("all")
