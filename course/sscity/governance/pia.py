"""Privacy impact assessment (PIA) after ISO/IEC 29134:2017 (JIS X 9251:2021).

The standard's process, and where each piece lives here:

=====================================================  ===========================================
ISO/IEC 29134 clause                                   this module
=====================================================  ===========================================
6.2 Determine whether a PIA is necessary (threshold)   :func:`threshold_analysis`
6.3.3 Describe what is being assessed                  :class:`SystemDescription`
6.4.1 Identify information flows of PII                :class:`PIIFlow` (collect, use, store,
                                                       share, delete)
6.4.4 Assess privacy risk (likelihood and impact)      :class:`Risk`, :class:`RiskRegister`
6.4.5 Prepare for treating privacy risks               ``Risk.treatment`` and residual risk
6.5.1 / 7 Prepare the report                           :meth:`PIA.to_markdown`, :meth:`PIA.to_html`
=====================================================  ===========================================

Japan's Personal Information Protection Commission (PPC) published its PIA guidance, 『PIAの
取組の促進について －PIAの意義と実施手順に沿った留意点－』, on 30 June 2021; it follows the
same steps.

**Threshold analysis.** The standard leaves the questions to the organisation. The criteria
here are those of the Article 29 Working Party's DPIA guidelines (WP248 rev.01, endorsed by
the EDPB), which say two or more met usually mean a full assessment is needed, plus two of
Japan's APPI (special care-required personal information, art. 2(3); provision to third
parties or abroad, arts. 27-28). ``min_criteria`` sets the rule: a city may choose 1 (a
2023 World Economic Forum report profiles Tsukuba for assessing all new technologies).
APPI article numbers are those in force since April 2022 for businesses (chapter 4); a
city's own bodies follow the rules for administrative organs (chapter 5) since April 2023.

**Risk scale.** ISO/IEC 29134 asks for likelihood and impact but leaves the scale to the
assessor. Here both run 1-4 with the labels of the CNIL's PIA method (negligible, limited,
significant, maximum); the score is likelihood x impact (1-16), banded **low** 1-3,
**medium** 4-6, **high** 8-16 (the course's choice, :data:`BANDS`).

**Feeds.** :func:`consent_ledger_feed` (module 02), :func:`sensor_feed` (module 03) and
:func:`mobility_pilot_feed` (module 04) describe what those systems' objects show -- data
items, actors, flows -- and list the items a risk assessor must rate. They do not invent
likelihoods or impacts: every entry they make has likelihood = impact = 2 marked
``assumed=True``, and a PIA with assumed ratings is not :attr:`PIA.completed`.

Example
-------
>>> t = threshold_analysis({"pii": True, "monitoring": True, "vulnerable": True})
>>> t.needed
True
>>> r = Risk("R1", "Rider's trace reveals home address", "store", likelihood=3, impact=3,
...          treatment="Keep only 1 km grid cells", residual_likelihood=1, residual_impact=3)
>>> r.score, r.band, r.residual_band
(9, 'high', 'low')
"""

from __future__ import annotations

import html
import numbers
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import pandas as pd

__all__ = [
    "BANDS",
    "CRITERIA",
    "FLOW_STAGES",
    "LEVELS",
    "PIA",
    "Feed",
    "PIIFlow",
    "Risk",
    "RiskRegister",
    "SystemDescription",
    "ThresholdResult",
    "band",
    "consent_ledger_feed",
    "mobility_pilot_feed",
    "sensor_feed",
    "threshold_analysis",
]

FLOW_STAGES = ("collect", "use", "store", "share", "delete")
FLOW_STAGES_JA = {"collect": "取得", "use": "利用", "store": "保管", "share": "提供", "delete": "消去"}

#: Likelihood and impact levels 1-4 (labels of the CNIL's PIA method), English / Japanese.
LEVELS = {1: ("negligible", "無視できる"), 2: ("limited", "限定的"), 3: ("significant", "重大"),
          4: ("maximum", "最大")}
#: Score bands (course's choice): the upper score of each band.
BANDS = (("low", "低", 3), ("medium", "中", 6), ("high", "高", 16))
ASSUMED_LEVEL = 2


# -- threshold analysis ------------------------------------------------------------------------
@dataclass(frozen=True)
class Criterion:
    """One threshold question: id, English and Japanese wording, and where it comes from."""

    id: str
    question_en: str
    question_ja: str
    basis: str


#: The gate question: without personal information there is nothing to assess.
PII_QUESTION = Criterion(
    "pii", "Does the system handle personal information (information that identifies a living person, "
    "alone or easily linked with other information)?",
    "個人情報（単独で、または他の情報と容易に照合して生存する個人を識別できる情報）を扱うか。",
    "APPI art. 2(1)")

CRITERIA: tuple[Criterion, ...] = (
    Criterion("profiling", "Does it evaluate, score or profile people?",
              "人を評価・採点・プロファイリングするか。", "WP248 criterion 1"),
    Criterion("automated_decision", "Does it take automated decisions with legal or similarly "
              "significant effects on people?", "人に法的または同様の重大な影響を与える自動決定を行うか。",
              "WP248 criterion 2"),
    Criterion("monitoring", "Does it systematically monitor people, e.g. in public spaces (cameras, "
              "sensors, location tracking)?",
              "公共空間などで人を系統的に監視するか（カメラ、センサー、位置追跡）。",
              "WP248 criterion 3"),
    Criterion("sensitive", "Does it handle special care-required personal information (e.g. medical "
              "history, disability) or other highly personal data?",
              "要配慮個人情報（病歴、障害など）やその他の機微な情報を扱うか。",
              "WP248 criterion 4; APPI art. 2(3)"),
    Criterion("large_scale", "Is it large scale (many people, a whole district or city)?",
              "大規模か（多数の人、地区や市全体）。", "WP248 criterion 5"),
    Criterion("matching", "Does it link or combine datasets from different sources or purposes?",
              "異なる出所や目的のデータを照合・結合するか。", "WP248 criterion 6"),
    Criterion("vulnerable", "Does it concern vulnerable people (children, elderly or disabled people, "
              "people who cannot easily refuse)?",
              "弱い立場の人（子ども、高齢者、障害のある人、断りにくい人）に関わるか。", "WP248 criterion 7"),
    Criterion("new_technology", "Does it use a new technology, or an existing one in a new way?",
              "新しい技術、または既存技術の新しい使い方を用いるか。", "WP248 criterion 8"),
    Criterion("blocks_rights", "Can it stop people from using a service or exercising a right?",
              "人がサービスを利用したり権利を行使したりすることを妨げうるか。", "WP248 criterion 9"),
    Criterion("third_party", "Does it provide personal data to third parties or abroad?",
              "個人データを第三者や外国に提供するか。", "APPI arts. 27-28"),
)


@dataclass
class ThresholdResult:
    """Result of :func:`threshold_analysis`: ``needed``, the bilingual ``reasons`` and the answers."""

    needed: bool
    reasons: list[str]
    answers: dict
    min_criteria: int

    @property
    def met(self) -> list[str]:
        """Ids of the criteria answered yes."""
        return [c.id for c in CRITERIA if self.answers.get(c.id)]

    def table(self) -> pd.DataFrame:
        """One row per question: id, question (EN / JA), basis, answer."""
        rows = [{"id": c.id, "question": c.question_en, "question_ja": c.question_ja, "basis": c.basis,
                 "answer": self.answers.get(c.id)} for c in (PII_QUESTION, *CRITERIA)]
        return pd.DataFrame(rows).set_index("id")


def threshold_analysis(answers: Mapping, min_criteria: int = 2) -> ThresholdResult:
    """Decide whether a full PIA is needed (ISO/IEC 29134, 6.2).

    Parameters
    ----------
    answers : mapping of str to bool
        ``"pii"`` (required) and any of the :data:`CRITERIA` ids; a criterion left out counts
        as "no" and is listed in the reasons as not answered.
    min_criteria : int, default 2
        How many criteria met make a full PIA needed (WP248: two; a city may choose one).

    Returns
    -------
    ThresholdResult
    """
    if not isinstance(answers, Mapping):
        raise ValueError("answers must be a dict {question id: True/False}, e.g. {'pii': True, "
                         "'monitoring': True}. / answers は {質問ID: True/False} の辞書にしてください。")
    known = {PII_QUESTION.id} | {c.id for c in CRITERIA}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise ValueError(f"Unknown question ids {unknown}; use {sorted(known)}. "
                         f"/ 不明な質問ID {unknown} です。{sorted(known)} から選んでください。")
    for key, value in answers.items():
        if not isinstance(value, bool):
            raise ValueError(f"Answer '{key}' with True or False; got {value!r}. "
                             f"/ '{key}' には True か False で答えてください。")
    if "pii" not in answers:
        raise ValueError("Answer 'pii' first: does the system handle personal information? "
                         "/ まず 'pii'（個人情報を扱うか）に答えてください。")
    if isinstance(min_criteria, bool) or not isinstance(min_criteria, numbers.Integral) or not (
            1 <= min_criteria <= len(CRITERIA)):
        raise ValueError(f"min_criteria must be a whole number 1...{len(CRITERIA)}; got {min_criteria!r}. "
                         f"/ min_criteria は 1〜{len(CRITERIA)} の整数にしてください。")
    answers = dict(answers)
    if not answers["pii"]:
        return ThresholdResult(False, ["No personal information is handled: no PIA is needed; record this "
                                       "answer and revisit it if the system changes. / 個人情報を扱わないため"
                                       "PIA は不要。この回答を記録し、システムが変われば見直す。"],
                               answers, int(min_criteria))
    met = [c for c in CRITERIA if answers.get(c.id)]
    reasons = [f"{c.question_en} Yes ({c.basis}). / {c.question_ja} はい。" for c in met]
    unanswered = [c.id for c in CRITERIA if c.id not in answers]
    if unanswered:
        reasons.append(f"Not answered (counted as no): {', '.join(unanswered)}. "
                       f"/ 未回答（「いいえ」として扱う）: {', '.join(unanswered)}。")
    needed = len(met) >= min_criteria
    verdict = (f"{len(met)} criteria met, {min_criteria} needed: a full PIA is "
               f"{'needed' if needed else 'not required by this rule'}. / 該当 {len(met)} 項目"
               f"（基準 {min_criteria}）: 本格的な PIA は{'必要' if needed else 'この基準では不要'}。")
    if not needed and met:
        verdict += (" One criterion can be enough; record why a PIA is not done. "
                    "/ 1 項目でも必要な場合がある。実施しない理由を記録すること。")
    return ThresholdResult(needed, [verdict, *reasons], answers, int(min_criteria))


# -- system description and PII flows -----------------------------------------------------------
def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty text; got {value!r}. "
                         f"/ {what} は空でない文字列にしてください。")
    return value


def _texts(values, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    values = tuple(values)
    if not values:
        raise ValueError(f"{what} must name at least one item. / {what} には 1 つ以上の項目が必要です。")
    return tuple(_text(v, what) for v in values)


@dataclass(frozen=True)
class PIIFlow:
    """One step of the life of personal data (ISO/IEC 29134, 6.4.1).

    Parameters
    ----------
    stage : {"collect", "use", "store", "share", "delete"}
    data_items : tuple of str
        What data, e.g. ``("resident ID", "GPS trace")``.
    actors : tuple of str
        Who does it or receives it.
    legal_basis : str
        Why it is lawful, e.g. ``"consent (APPI art. 27(1))"``; write ``"to be decided"``
        rather than leave it out.
    purpose, notes, source : str
        ``source`` names the feed or document the flow comes from.
    """

    stage: str
    data_items: tuple
    actors: tuple
    legal_basis: str
    purpose: str = ""
    notes: str = ""
    source: str = ""

    def __post_init__(self):
        if self.stage not in FLOW_STAGES:
            raise ValueError(f"stage must be one of {FLOW_STAGES}; got {self.stage!r}. "
                             f"/ stage は {FLOW_STAGES} のいずれかにしてください。")
        object.__setattr__(self, "data_items", _texts(self.data_items, "data_items"))
        object.__setattr__(self, "actors", _texts(self.actors, "actors"))
        _text(self.legal_basis, "legal_basis")


@dataclass
class SystemDescription:
    """What is being assessed (ISO/IEC 29134, 6.3.3): name, purpose, controller and its PII flows."""

    name: str
    purpose: str
    controller: str
    description: str = ""
    flows: list = field(default_factory=list)

    def __post_init__(self):
        for what in ("name", "purpose", "controller"):
            _text(getattr(self, what), what)
        self.flows = list(self.flows)
        for flow in self.flows:
            if not isinstance(flow, PIIFlow):
                raise ValueError(f"flows must be PIIFlow objects; got {type(flow).__name__}. "
                                 "/ flows には PIIFlow を渡してください。")

    def add_flows(self, flows) -> SystemDescription:
        """Add flows (e.g. ``feed.flows``); returns self."""
        for flow in flows:
            if not isinstance(flow, PIIFlow):
                raise ValueError(f"flows must be PIIFlow objects; got {type(flow).__name__}. "
                                 "/ flows には PIIFlow を渡してください。")
            self.flows.append(flow)
        return self

    def missing_stages(self) -> list[str]:
        """Life-cycle stages with no flow described (each needs one, if only to say "none")."""
        present = {f.stage for f in self.flows}
        return [s for s in FLOW_STAGES if s not in present]

    def flows_table(self) -> pd.DataFrame:
        """The flows in life-cycle order, lists joined with '; '."""
        order = {s: i for i, s in enumerate(FLOW_STAGES)}
        rows = [{**asdict(f), "data_items": "; ".join(f.data_items), "actors": "; ".join(f.actors)}
                for f in sorted(self.flows, key=lambda f: order[f.stage])]
        return pd.DataFrame(rows, columns=["stage", "data_items", "actors", "legal_basis", "purpose",
                                           "notes", "source"])


# -- risks ---------------------------------------------------------------------------------------
def _level(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value not in LEVELS:
        raise ValueError(f"{what} must be a whole number 1...4 (1 negligible ... 4 maximum); got {value!r}. "
                         f"/ {what} は 1〜4 の整数にしてください（1 無視できる〜4 最大）。")
    return int(value)


def band(score: int) -> str:
    """The band of a likelihood x impact score: ``"low"``, ``"medium"`` or ``"high"``."""
    if isinstance(score, bool) or not isinstance(score, numbers.Integral) or not 1 <= score <= 16:
        raise ValueError(f"score must be a whole number 1...16; got {score!r}. "
                         f"/ score は 1〜16 の整数にしてください。")
    return next(name for name, _, top in BANDS if score <= top)


@dataclass
class Risk:
    """One privacy risk (ISO/IEC 29134, 6.4.4-6.4.5): likelihood x impact, treatment, residual.

    Parameters
    ----------
    id : str
    title : str
        The risk to people, in a sentence.
    stage : str
        The flow stage it arises at (one of :data:`FLOW_STAGES`).
    likelihood, impact : int
        1-4 before treatment.
    treatment : str
        What is done about it ("" = not yet decided).
    residual_likelihood, residual_impact : int, optional
        1-4 after treatment.
    owner, source : str
    assumed : bool
        True while likelihood and impact are defaults nobody has assessed.
    """

    id: str
    title: str
    stage: str
    likelihood: int = ASSUMED_LEVEL
    impact: int = ASSUMED_LEVEL
    treatment: str = ""
    residual_likelihood: int | None = None
    residual_impact: int | None = None
    owner: str = ""
    source: str = ""
    assumed: bool = False

    def __post_init__(self):
        _text(self.id, "id")
        _text(self.title, "title")
        if self.stage not in FLOW_STAGES:
            raise ValueError(f"stage must be one of {FLOW_STAGES}; got {self.stage!r}. "
                             f"/ stage は {FLOW_STAGES} のいずれかにしてください。")
        self.likelihood = _level(self.likelihood, "likelihood")
        self.impact = _level(self.impact, "impact")
        if (self.residual_likelihood is None) != (self.residual_impact is None):
            raise ValueError("Give both residual_likelihood and residual_impact, or neither. "
                             "/ residual_likelihood と residual_impact は両方指定するか、"
                             "両方省略してください。")
        if self.residual_likelihood is not None:
            self.residual_likelihood = _level(self.residual_likelihood, "residual_likelihood")
            self.residual_impact = _level(self.residual_impact, "residual_impact")
            if self.residual_score > self.score:
                raise ValueError(
                    f"Risk {self.id}: the residual score ({self.residual_score}) is above the score before "
                    f"treatment ({self.score}); a treatment that adds risk is a new risk of its own. "
                    f"/ リスク {self.id}: 対策後のスコアが対策前を上回っています。対策が生む新たなリスクは"
                    "別の項目として登録してください。")

    @property
    def score(self) -> int:
        return self.likelihood * self.impact

    @property
    def band(self) -> str:
        return band(self.score)

    @property
    def residual_score(self) -> int | None:
        if self.residual_likelihood is None:
            return None
        return self.residual_likelihood * self.residual_impact

    @property
    def residual_band(self) -> str | None:
        return None if self.residual_score is None else band(self.residual_score)

    @property
    def treated(self) -> bool:
        """A treatment is written and the residual risk is rated."""
        return bool(self.treatment.strip()) and self.residual_score is not None


REGISTER_COLUMNS = ["id", "stage", "title", "likelihood", "impact", "score", "band", "treatment",
                    "residual_likelihood", "residual_impact", "residual_score", "residual_band", "owner",
                    "assumed", "source"]


class RiskRegister:
    """The PIA's risk register: a list of :class:`Risk` with unique ids, shown as a DataFrame."""

    def __init__(self, risks=()):
        self._risks: list[Risk] = []
        self.extend(risks)

    def add(self, risk: Risk | None = None, **fields) -> Risk:
        """Add a :class:`Risk` (or build one from ``fields``); returns it."""
        if risk is None:
            risk = Risk(**fields)
        elif fields or not isinstance(risk, Risk):
            raise ValueError("Pass a Risk, or the fields of one (id=..., title=..., stage=...). "
                             "/ Risk か、その項目（id=..., title=..., stage=...）を渡してください。")
        if any(r.id == risk.id for r in self._risks):
            raise ValueError(f"Risk id {risk.id!r} is already in the register. "
                             f"/ リスク ID {risk.id!r} はすでに登録されています。")
        self._risks.append(risk)
        return risk

    def extend(self, risks) -> RiskRegister:
        """Add several risks (e.g. ``feed.risks``); returns self."""
        for risk in risks:
            self.add(risk)
        return self

    def __getitem__(self, risk_id: str) -> Risk:
        for risk in self._risks:
            if risk.id == risk_id:
                return risk
        raise KeyError(risk_id)

    def __iter__(self):
        return iter(self._risks)

    def __len__(self) -> int:
        return len(self._risks)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per risk, highest score first (columns :data:`REGISTER_COLUMNS`)."""
        rows = [{**{k: getattr(r, k) for k in REGISTER_COLUMNS}} for r in self._risks]
        frame = pd.DataFrame(rows, columns=REGISTER_COLUMNS)
        for column in ("residual_likelihood", "residual_impact", "residual_score"):
            frame[column] = frame[column].astype("Int64")
        frame = frame.sort_values(["score", "id"], ascending=[False, True], kind="stable")
        return frame.reset_index(drop=True)

    def matrix(self, residual: bool = False) -> pd.DataFrame:
        """Counts of risks by likelihood (rows, 4 at the top) and impact (columns 1-4)."""
        cells = Counter((r.residual_likelihood, r.residual_impact) if residual else (r.likelihood, r.impact)
                        for r in self._risks)
        rows = sorted(LEVELS, reverse=True)
        return pd.DataFrame([[cells.get((lk, im), 0) for im in LEVELS] for lk in rows],
                            index=pd.Index(rows, name="likelihood"),
                            columns=pd.Index(list(LEVELS), name="impact"))

    def plot_matrix(self, ax=None, residual: bool = False):
        """Draw :meth:`matrix` as a heat map coloured by band; returns the matplotlib axes."""
        import matplotlib.pyplot as plt
        import numpy as np
        from matplotlib.colors import ListedColormap

        if ax is None:
            _, ax = plt.subplots(figsize=(4.2, 3.6))
        counts = self.matrix(residual)
        # Colour each cell by the band of its score, write the number of risks in it.
        bands = np.array([[[name for name, _, _ in BANDS].index(band(lk * im)) for im in counts.columns]
                          for lk in counts.index])
        ax.imshow(bands, cmap=ListedColormap(["#cfe8cf", "#fbe3b0", "#f4b6b0"]), vmin=0, vmax=2)
        for i, lk in enumerate(counts.index):
            for j, im in enumerate(counts.columns):
                if counts.loc[lk, im]:
                    ax.text(j, i, str(counts.loc[lk, im]), ha="center", va="center", fontsize=12)
        ax.set_xticks(range(4), [f"{k}\n{LEVELS[k][0]}" for k in counts.columns], fontsize="small")
        ax.set_yticks(range(4), [f"{k} {LEVELS[k][0]}" for k in counts.index], fontsize="small")
        ax.set_xlabel("impact / 影響度")
        ax.set_ylabel("likelihood / 発生可能性")
        ax.set_title("residual risk / 残留リスク" if residual else "risk before treatment / 対策前のリスク")
        return ax

    def __repr__(self) -> str:
        bands = Counter(r.band for r in self._risks)
        return f"RiskRegister({len(self)} risks: {dict(bands)})"


# -- feeds from the other modules ---------------------------------------------------------------
@dataclass
class Feed:
    """What a feed found: PII ``flows``, register entries to rate (``risks``) and plain ``facts``."""

    flows: list
    risks: list
    facts: dict


def _assumed_risk(rid: str, title: str, stage: str, source: str) -> Risk:
    return Risk(rid, title, stage, likelihood=ASSUMED_LEVEL, impact=ASSUMED_LEVEL, source=source,
                assumed=True)


def consent_ledger_feed(ledger, prefix: str = "CL") -> Feed:
    """Flows and items to rate from module 02's consent ledger (``sscity.platform.consent``).

    Describes what the ledger holds: who decided what for which recipient and purpose, the
    reads it allowed and refused, and that a hash chain cannot forget a record.
    """
    from sscity.platform.consent import ConsentLedger

    if not isinstance(ledger, ConsentLedger):
        raise ValueError(f"Give a sscity.platform.consent.ConsentLedger; got {type(ledger).__name__}. "
                         "/ sscity.platform.consent.ConsentLedger を渡してください。")
    source = "sscity.platform.consent"
    records = ledger.records
    actions = Counter(r.action for r in records)
    reads = Counter((r.recipient, r.purpose) for r in records if r.action == "access-allowed")
    denied = Counter(r.recipient for r in records if r.action == "access-denied")
    facts = {"records": len(records), "residents": len({r.resident for r in records}),
             "recipients": sorted({r.recipient for r in records}),
             "purposes": sorted({r.purpose for r in records}), **{f"n_{k}": v for k, v in actions.items()},
             "chain_intact": not ledger.verify()}
    decision_items = ("resident ID", "recipient", "purpose", "decision and time", "entity ID read")
    flows = [
        PIIFlow("collect", decision_items, ("resident", "platform operator"),
                "the resident's own decision, kept as evidence of consent", "dynamic opt-in consent",
                f"grants: {actions.get('grant', 0)}, revocations: {actions.get('revoke', 0)}", source),
        PIIFlow("use", decision_items, ("platform operator",), "consent management",
                "decide each access request (gated_get)",
                f"reads allowed: {actions.get('access-allowed', 0)}, "
                f"refused: {actions.get('access-denied', 0)}",
                source),
        PIIFlow("store", decision_items, ("platform operator",), "to be decided (retention period)",
                "evidence of consent", "append-only, SHA-256 hash chain, JSON lines", source),
        PIIFlow("delete", decision_items, ("platform operator",), "to be decided",
                notes="none possible: deleting a record breaks the hash chain (verify() reports it)",
                source=source),
    ]
    risks = []
    for i, ((recipient, purpose), n) in enumerate(sorted(reads.items()), start=1):
        flows.append(PIIFlow("share", ("resident's personal-data entity",), (recipient,),
                             "the resident's consent (APPI art. 27(1))", purpose, f"reads allowed: {n}",
                             source))
        risks.append(_assumed_risk(f"{prefix}-S{i}", f"{recipient} received resident data for '{purpose}' "
                                   f"(reads: {n}): rate use beyond that purpose", "share", source))
    if denied:
        who = ", ".join(f"{k} ({v})" for k, v in sorted(denied.items()))
        risks.append(_assumed_risk(f"{prefix}-D", "Recipients asked for data without standing consent: "
                                   f"{who}", "use", source))
    if records:
        risks.append(_assumed_risk(f"{prefix}-R", f"The ledger keeps {facts['residents']} residents' IDs "
                                   "with every decision and cannot delete any record", "store", source))
    return Feed(flows, risks, facts)


def sensor_feed(fields=None, stations=None, interval_s: float = 600, prefix: str = "SN") -> Feed:
    """Flows and items to rate from module 03's stations (``sscity.sensing`` payload and gateway).

    Parameters
    ----------
    fields : iterable of str, optional
        The fields a station sends (default: all of ``sscity.sensing.payload.FIELDS``).
    stations : mapping or sscity.sensing.gateway.Gateway, optional
        ``{station_id: (lon, lat)}`` or a gateway (its ``stations``), for the count of places.
    interval_s : float
        Counting interval of ``people_count``.
    """
    from sscity.sensing.payload import FIELDS

    chosen = tuple(FIELDS if fields is None else fields)
    unknown = sorted(set(chosen) - set(FIELDS))
    if unknown or not chosen:
        raise ValueError(f"fields must be among {FIELDS}; got {list(chosen)}. "
                         f"/ fields は {FIELDS} から選んでください。")
    if stations is not None and hasattr(stations, "stations"):
        stations = stations.stations
    n_stations = len(stations) if stations is not None else None
    source = "sscity.sensing"
    facts = {"fields": list(chosen), "stations": n_stations, "interval_s": interval_s,
             "people_count": "people_count" in chosen}
    measured = tuple(f for f in chosen if f != "flags")
    flows = [PIIFlow("use", measured, ("edge gateway",), "to be decided",
                     "decode frames into NGSI-LD entities", source=source),
             PIIFlow("store", measured + ("station location",), ("city data platform",), "to be decided",
                     "latest reading per station and its temporal history",
                     "AirQualityObserved, NoiseLevelObserved, CrowdFlowObserved", source)]
    risks = []
    if "people_count" in chosen:
        flows.insert(0, PIIFlow(
            "collect", ("device radio addresses (if counted from Wi-Fi/Bluetooth)",), ("station",),
            "to be decided", "count people", "counted on the station; only the count is sent "
            "(sscity.sensing.privacy.count_unique_devices)", source))
        where = f"{n_stations} stations" if n_stations is not None else "each station"
        risks.append(_assumed_risk(f"{prefix}-1", f"People counts per {interval_s:g} s at {where}: a "
                                   "small count at a quiet place and time can single out a person", "store",
                                   source))
    return Feed(flows, risks, facts)


_LOG_ITEMS = {
    ("x_m", "y_m", "theta_rad"): "rider's position trace",
    ("v_user_mps", "omega_user_radps"): "rider's joystick commands",
    ("min_distance_m", "density_2_5", "density_5"): "distances to and density of nearby pedestrians",
    ("contacts", "tilt_deg"): "contacts and tilt (incidents involving the rider)",
}


def mobility_pilot_feed(result=None, profile=None, prefix: str = "MB") -> Feed:
    """Flows and items to rate from module 04's mobility pilot (``sscity.mobility``).

    Parameters
    ----------
    result : sscity.mobility.episode.EpisodeResult or DataFrame, optional
        An episode (or its ``log``): which personal data a ride records.
    profile : str or sscity.mobility.routing.AccessProfile, optional
        The rider's access profile; any other than ``"walking"`` reveals a disability or
        mobility need.
    """
    log = getattr(result, "log", result)
    if log is not None and not isinstance(log, pd.DataFrame):
        raise ValueError("result must be an EpisodeResult or its log DataFrame. "
                         "/ result には EpisodeResult かその log（DataFrame）を渡してください。")
    pedestrians = getattr(result, "pedestrians_xy", None)
    name = getattr(profile, "name", profile)
    if name is not None and not isinstance(name, str):
        raise ValueError("profile must be a profile name or an AccessProfile. "
                         "/ profile にはプロファイル名か AccessProfile を渡してください。")
    source = "sscity.mobility"
    items = []
    if log is not None:
        items = [item for columns, item in _LOG_ITEMS.items() if any(c in log.columns for c in columns)]
    facts = {"log_rows": None if log is None else len(log), "recorded": items,
             "pedestrians": None if pedestrians is None else int(pedestrians.shape[1]), "profile": name}
    if log is not None and "t_s" in log.columns and len(log) > 1:
        facts["duration_s"] = float(log["t_s"].iloc[-1] - log["t_s"].iloc[0])
        facts["rate_hz"] = round((len(log) - 1) / facts["duration_s"], 3) if facts["duration_s"] else None
    flows, risks = [], []
    rate = f" at {facts['rate_hz']:g} Hz" if facts.get("rate_hz") else ""
    if items:
        flows.append(PIIFlow("collect", tuple(items), ("mobility device", "operator"), "to be decided",
                             "shared control and safety evaluation", source=source))
        flows.append(PIIFlow("store", tuple(items), ("operator",), "to be decided", "episode logs",
                             f"{len(log)} rows{rate}", source))
        if "rider's position trace" in items:
            risks.append(_assumed_risk(f"{prefix}-1", f"The log keeps the rider's position trace{rate}: "
                                       "where a person went, and when", "store", source))
    if pedestrians is not None or any("pedestrians" in i for i in items):
        who = f"{facts['pedestrians']} pedestrians" if facts["pedestrians"] is not None else "pedestrians"
        flows.append(PIIFlow("collect", ("positions of bystanders",), ("mobility device",), "to be decided",
                             "avoid collisions", f"{who} seen by the device's sensors", source))
        risks.append(_assumed_risk(f"{prefix}-2", f"The device records {who} nearby who did not "
                                   "sign up to the pilot", "collect", source))
    if name is not None and name != "walking":
        flows.append(PIIFlow("collect", (f"access profile '{name}'",), ("rider", "operator"),
                             "prior consent for special care-required information (APPI art. 20(2))",
                             "route the rider", "a disability is special care-required personal "
                             "information (APPI art. 2(3); Cabinet Order art. 2(i))", source))
        risks.append(_assumed_risk(f"{prefix}-3", f"The rider's access profile '{name}' reveals a disability "
                                   "(special care-required personal information)", "collect", source))
    return Feed(flows, risks, facts)


# -- the assessment and its report ---------------------------------------------------------------
class PIA:
    """A privacy impact assessment: threshold, system description, risk register, sign-off.

    Parameters
    ----------
    system : SystemDescription
    threshold : ThresholdResult, optional
    register : RiskRegister, optional
    team : iterable of str
        Who assessed (ISO/IEC 29134, 6.3.1).
    signed_off_by : str, optional
        Who accepted the residual risks; set it when the assessment is done.
    date : str
        Date of the report (ISO 8601), given explicitly so the report is reproducible.
    """

    def __init__(self, system: SystemDescription, threshold: ThresholdResult | None = None,
                 register: RiskRegister | None = None, *, team=(), signed_off_by: str | None = None,
                 date: str = ""):
        if not isinstance(system, SystemDescription):
            raise ValueError("system must be a SystemDescription. "
                             "/ system には SystemDescription を渡してください。")
        if threshold is not None and not isinstance(threshold, ThresholdResult):
            raise ValueError("threshold must come from threshold_analysis(). "
                             "/ threshold には threshold_analysis() の結果を渡してください。")
        self.system = system
        self.threshold = threshold
        self.register = register if register is not None else RiskRegister()
        if not isinstance(self.register, RiskRegister):
            raise ValueError("register must be a RiskRegister. "
                             "/ register には RiskRegister を渡してください。")
        self.team = tuple(team)
        self.signed_off_by = signed_off_by
        self.date = date

    def missing(self) -> list[str]:
        """What still keeps the PIA from being completed (bilingual), empty when done."""
        gaps = []
        if self.threshold is None:
            return ["Do the threshold analysis. / しきい値分析を行う。"]
        if self.threshold.needed:
            for stage in self.system.missing_stages():
                gaps.append(f"Describe the '{stage}' stage of the PII flows (say 'none' if there is none). "
                            f"/ 個人情報の流れの「{FLOW_STAGES_JA[stage]}」を記述する"
                            "（なければ「なし」と書く）。")
            if not len(self.register):
                gaps.append("Enter the risks in the register. / リスク台帳にリスクを登録する。")
            for risk in self.register:
                if risk.assumed:
                    gaps.append(f"Rate {risk.id}: its likelihood and impact are assumed defaults. "
                                f"/ {risk.id} の発生可能性と影響度を評価する（既定値のまま）。")
                if not risk.treated:
                    gaps.append(f"Decide the treatment and residual risk of {risk.id}. "
                                f"/ {risk.id} の対策と残留リスクを決める。")
        if not self.signed_off_by:
            gaps.append("Sign off the residual risks (signed_off_by). "
                        "/ 残留リスクを承認する（signed_off_by）。")
        return gaps

    @property
    def completed(self) -> bool:
        """True when :meth:`missing` is empty (what the TRL staging rule asks for deployment)."""
        return not self.missing()

    # -- rendering --
    def _sections(self):
        """The report as (heading, paragraphs, table or None) in order, in plain text."""
        s = self.system
        t = self.threshold
        out = [("System description / 対象の説明",
                [f"Purpose / 目的: {s.purpose}", f"Controller / 管理者: {s.controller}"]
                + ([s.description] if s.description else [])
                + ([f"Team / 評価チーム: {', '.join(self.team)}"] if self.team else []), None)]
        if t is None:
            out.append(("Threshold analysis / しきい値分析", ["Not done yet. / 未実施。"], None))
        else:
            verdict = "needed / 必要" if t.needed else "not needed / 不要"
            table = t.table().reset_index()[["id", "question", "question_ja", "answer"]]
            out.append(("Threshold analysis / しきい値分析",
                        [f"Full PIA / 本格的な PIA: {verdict}", *t.reasons], table))
        out.append(("PII flows / 個人情報の流れ",
                    [f"Stages not described / 未記述の段階: {', '.join(s.missing_stages()) or '-'}"],
                    s.flows_table().drop(columns=["source"])))
        levels = ", ".join(f"{k} {en} / {ja}" for k, (en, ja) in LEVELS.items())
        scale = (f"Likelihood and impact 1-4 ({levels}); "
                 "score = likelihood x impact; bands: low 1-3, medium 4-6, high 8-16. "
                 "/ 発生可能性と影響度は 1〜4、スコア = 発生可能性 × 影響度、"
                 "帯: 低 1〜3、中 4〜6、高 8〜16。")
        register = self.register.to_dataframe()[["id", "stage", "title", "likelihood", "impact", "score",
                                                 "band", "treatment", "residual_score", "residual_band",
                                                 "assumed"]]
        out.append(("Risk register / リスク台帳", [scale], register))
        status = ("completed / 完了" if self.completed else "not completed / 未完了")
        out.append(("Status / 状態", [f"{status}; signed off by / 承認者: {self.signed_off_by or '-'}",
                                      *self.missing()], None))
        return out

    def to_markdown(self) -> str:
        """The report as bilingual Markdown (tables as pipe tables)."""
        lines = [f"# PIA report / PIA 報告書: {_md(self.system.name)}", ""]
        if self.date:
            lines += [f"Date / 日付: {_md(self.date)}", ""]
        for heading, paragraphs, table in self._sections():
            lines += [f"## {heading}", ""]
            for paragraph in paragraphs:
                lines += [_md(paragraph), ""]
            if table is not None and len(table):
                lines += [_md_table(table), ""]
        return "\n".join(lines).rstrip() + "\n"

    def to_html(self) -> str:
        """The report as a self-contained HTML fragment; every user text is escaped."""
        parts = [f"<h1>PIA report / PIA 報告書: {html.escape(self.system.name)}</h1>"]
        if self.date:
            parts.append(f"<p>Date / 日付: {html.escape(self.date)}</p>")
        for heading, paragraphs, table in self._sections():
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            parts += [f"<p>{html.escape(p)}</p>" for p in paragraphs]
            if table is not None and len(table):
                parts.append(_html_table(table))
        return "<div class=\"sscity-pia\">\n" + "\n".join(parts) + "\n</div>"

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return (f"PIA({self.system.name!r}, {len(self.system.flows)} flows, {len(self.register)} risks, "
                f"completed={self.completed})")


def _md(text) -> str:
    """Markdown-safe one-line text.

    Markdown passes raw HTML through, so ``<``, ``>`` and ``&`` are escaped as in HTML; pipes
    would split a table cell and newlines would end it.
    """
    text = html.escape(str(text), quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return ""
    return str(value)


def _md_table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(_md(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(_md(_cell(v)) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"
