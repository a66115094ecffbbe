"""Technology readiness levels (TRL): questions -> level -> stage in the city.

The nine levels are those of the European Commission's Horizon 2020 work programme,
*General Annexes, G. Technology readiness levels (TRL)* (Work Programme 2014-2015, extract
from Part 19 of Commission Decision C(2014)4995; the same wording is used in the Horizon
Europe general annexes). The Japanese names are the course's translation.

**Level from evidence.** :func:`assess_trl` asks one question per level, in order; the
level is the highest one whose evidence, *and all earlier levels' evidence*, is there. A
"yes" above a "no" does not count: a demonstration in the street (TRL 7) without a lab
validation (TRL 4) is a gap to close, not TRL 7.

**Stage from level: the deck's proposal.** The Tsukuba deck proposes a staged
certification of technology by TRL (no public Tsukuba source for such a rule was found, so
it is taught as the deck's proposal):

=====================  =============  =================================================
stage                  TRL            condition
=====================  =============  =================================================
``lab``                <= 4           --
``living_lab``         5-6            sandbox / living lab with informed participants
``deployment``         >= 7           only with a **completed** privacy impact assessment
=====================  =============  =================================================

A technology at TRL 7 or above without a completed PIA stays in the living lab
(:func:`stage_for`).

Examples
--------
>>> result = assess_trl([True, True, True, True, True, False, True])
>>> result.level, result.ignored
(5, [7])
>>> stage_for(8, pia_completed=False).stage
'living_lab'
>>> stage_for(8, pia_completed=True).stage
'deployment'
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

__all__ = [
    "STAGES",
    "TRL_LEVELS",
    "Level",
    "Stage",
    "TRLAssessment",
    "assess_trl",
    "stage_for",
    "stage_pilots",
    "trl_table",
]

SOURCE = ("European Commission, Horizon 2020 Work Programme 2014-2015, General Annexes, "
          "G. Technology readiness levels (TRL), Commission Decision C(2014)4995")


@dataclass(frozen=True)
class Level:
    """One TRL: the Annex G wording, a translation, the question asked and the evidence it needs."""

    level: int
    name_en: str
    name_ja: str
    question_en: str
    question_ja: str
    evidence_en: str
    evidence_ja: str


TRL_LEVELS: tuple[Level, ...] = (
    Level(1, "basic principles observed", "基本原理の観察",
          "Have the basic principles been observed and reported?",
          "基本原理が観察され、報告されているか。",
          "a paper or report describing the principle",
          "原理を記した論文・報告書"),
    Level(2, "technology concept formulated", "技術コンセプトの定式化",
          "Has the technology concept and its application been formulated?",
          "技術のコンセプトと用途が定式化されているか。",
          "a written concept: what it does, for whom, and why it should work",
          "何を・誰のために・なぜ機能するかを書いたコンセプト文書"),
    Level(3, "experimental proof of concept", "実験による概念実証",
          "Has an experiment shown that the critical function works?",
          "重要な機能が働くことを実験で示したか。",
          "results of a proof-of-concept experiment",
          "概念実証実験の結果"),
    Level(4, "technology validated in lab", "実験室での技術検証",
          "Have the components been integrated and validated in the lab against stated requirements?",
          "構成要素を統合し、定めた要件に対して実験室で検証したか。",
          "a lab validation report against stated requirements",
          "要件に対する実験室での検証報告"),
    Level(5, "technology validated in relevant environment (industrially relevant environment in the "
             "case of key enabling technologies)",
          "関連する環境での技術検証（基盤的技術では産業上関連する環境）",
          "Has the technology been validated in a relevant environment (e.g. a closed campus site, "
          "realistic data)?",
          "関連する環境（例: 閉じた構内の試験場、現実的なデータ）で技術を検証したか。",
          "test results from a relevant environment",
          "関連する環境での試験結果"),
    Level(6, "technology demonstrated in relevant environment (industrially relevant environment in "
             "the case of key enabling technologies)",
          "関連する環境での技術実証（基盤的技術では産業上関連する環境）",
          "Has a prototype of the system been demonstrated in a relevant environment?",
          "システムの試作機を関連する環境で実証したか。",
          "a demonstration record of the prototype in a relevant environment",
          "関連する環境での試作機の実証記録"),
    Level(7, "system prototype demonstration in operational environment",
          "運用環境でのシステム試作機の実証",
          "Has a system prototype been demonstrated in the operational environment (real streets, "
          "real users)?",
          "運用環境（実際の街路・実際の利用者）でシステム試作機を実証したか。",
          "a trial report from the operational environment",
          "運用環境での試行報告"),
    Level(8, "system complete and qualified", "システムの完成と認定",
          "Is the system complete and qualified for its intended use (tests and certification passed)?",
          "システムが完成し、意図した用途について認定（試験・認証）を受けたか。",
          "qualification or certification results",
          "認定・認証の結果"),
    Level(9, "actual system proven in operational environment (competitive manufacturing in the case "
             "of key enabling technologies; or in space)",
          "運用環境での実システムの実証（基盤的技術では競争力のある製造、または宇宙で）",
          "Has the actual system been proven in operational use?",
          "実システムが実運用で実証されたか。",
          "records of successful operation",
          "運用実績の記録"),
)


def trl_table() -> pd.DataFrame:
    """The nine levels as a DataFrame (level, names, question and evidence in English and Japanese)."""
    return pd.DataFrame([vars(level) for level in TRL_LEVELS]).set_index("level")


@dataclass
class TRLAssessment:
    """Result of :func:`assess_trl`.

    Attributes
    ----------
    level : int
        Highest level with all evidence up to it (0: not even TRL 1).
    answers : dict of int to bool or None
        The answer to each level's question (None: not answered).
    ignored : list of int
        Levels answered "yes" above the first gap: claimed, but not counted.
    next_level : Level or None
        The next level to reach, with the evidence it needs (None at TRL 9).
    """

    level: int
    answers: dict
    ignored: list = field(default_factory=list)

    @property
    def next_level(self) -> Level | None:
        return TRL_LEVELS[self.level] if self.level < 9 else None

    def table(self) -> pd.DataFrame:
        """One row per level: question, answer, and whether it counts."""
        rows = []
        for level in TRL_LEVELS:
            answer = self.answers.get(level.level)
            rows.append({"level": level.level, "name": level.name_en, "question": level.question_en,
                         "answer": answer, "counts": level.level <= self.level})
        return pd.DataFrame(rows).set_index("level")

    def __repr__(self) -> str:
        gap = f", ignored={self.ignored}" if self.ignored else ""
        return f"TRLAssessment(level={self.level}{gap})"


def assess_trl(answers) -> TRLAssessment:
    """The TRL from yes/no answers to the nine questions, asked in order.

    Parameters
    ----------
    answers : sequence of bool, or mapping of level (1-9) to bool
        A sequence answers the questions of TRL 1, 2, ... in order (it may stop early); a
        mapping answers some levels. An unanswered question counts as "no".

    Returns
    -------
    TRLAssessment
    """
    if isinstance(answers, Mapping):
        given = dict(answers)
    elif isinstance(answers, (list, tuple)):
        if len(answers) > 9:
            raise ValueError(f"There are 9 questions; got {len(answers)} answers. "
                             f"/ 質問は 9 問です（{len(answers)} 個の回答が渡されました）。")
        given = {i + 1: a for i, a in enumerate(answers)}
    else:
        raise ValueError("answers must be a list of yes/no (True/False) in TRL order, or a dict "
                         "{level: True/False}. / answers は TRL の順の True/False のリストか "
                         "{レベル: True/False} の辞書にしてください。")
    clean = {}
    for key, value in given.items():
        if isinstance(key, bool) or not isinstance(key, numbers.Integral) or not 1 <= key <= 9:
            raise ValueError(f"TRL levels are whole numbers 1...9; got {key!r}. "
                             f"/ TRL は 1〜9 の整数です（{key!r} が渡されました）。")
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"The answer for TRL {key} must be True, False or None; got {value!r}. "
                             f"/ TRL {key} の回答は True、False、None のいずれかにしてください。")
        clean[int(key)] = value
    level = 0
    while level < 9 and clean.get(level + 1) is True:
        level += 1
    ignored = sorted(k for k, v in clean.items() if v is True and k > level)
    return TRLAssessment(level, {k: clean.get(k) for k in range(1, 10)}, ignored)


STAGES = {
    "lab": ("lab", "実験室"),
    "living_lab": ("living lab / sandbox", "リビングラボ・サンドボックス"),
    "deployment": ("public deployment", "公共空間での本格導入"),
}


@dataclass(frozen=True)
class Stage:
    """Where a technology may run under the deck's proposal, why, and what the next step needs."""

    stage: str
    trl: int
    pia_completed: bool
    reason_en: str
    reason_ja: str
    next_en: str
    next_ja: str

    @property
    def label(self) -> str:
        en, ja = STAGES[self.stage]
        return f"{en} / {ja}"


def _completed(pia) -> bool:
    if isinstance(pia, bool):
        return pia
    if hasattr(pia, "completed"):  # a sscity.governance.pia.PIA
        return bool(pia.completed)
    raise ValueError("pia_completed must be True/False or a PIA object with a 'completed' property. "
                     "/ pia_completed は True/False か、completed 属性を持つ PIA にしてください。")


def stage_for(trl, pia_completed=False) -> Stage:
    """The stage of a technology at ``trl`` under the deck's proposal (see the module notes).

    Parameters
    ----------
    trl : int or TRLAssessment
        0-9.
    pia_completed : bool or PIA
        Whether its privacy impact assessment is completed (a :class:`sscity.governance.pia.PIA`
        is asked for its ``completed`` property).
    """
    if isinstance(trl, TRLAssessment):
        trl = trl.level
    if isinstance(trl, bool) or not isinstance(trl, numbers.Integral) or not 0 <= trl <= 9:
        raise ValueError(f"trl must be a whole number 0...9; got {trl!r}. "
                         f"/ trl は 0〜9 の整数にしてください。")
    trl, done = int(trl), _completed(pia_completed)
    nxt = TRL_LEVELS[trl] if trl < 9 else None
    if trl <= 4:
        return Stage("lab", trl, done, f"TRL {trl} <= 4: not yet validated outside the lab.",
                     f"TRL {trl} ≦ 4: 実験室の外ではまだ検証されていない。",
                     f"TRL {nxt.level} needs {nxt.evidence_en}; the living lab starts at TRL 5.",
                     f"TRL {nxt.level} には{nxt.evidence_ja}が必要。リビングラボは TRL 5 から。")
    if trl <= 6:
        return Stage("living_lab", trl, done, f"TRL {trl} in 5-6: validated or demonstrated in a relevant "
                     "environment, not yet in the operational one.",
                     f"TRL {trl}（5〜6）: 関連する環境では検証・実証済みだが、運用環境ではまだ。",
                     f"TRL {nxt.level} needs {nxt.evidence_en}; deployment needs TRL >= 7 and a "
                     "completed PIA.",
                     f"TRL {nxt.level} には{nxt.evidence_ja}が必要。本格導入には TRL 7 以上と完了した PIA が"
                     "必要。")
    after = (f" Next: TRL {nxt.level} needs {nxt.evidence_en}." if nxt else "")
    after_ja = (f" 次は TRL {nxt.level}: {nxt.evidence_ja}が必要。" if nxt else "")
    if not done:
        return Stage("living_lab", trl, done, f"TRL {trl} >= 7, but the privacy impact assessment is not "
                     "completed: it stays in the living lab.",
                     f"TRL {trl} ≧ 7 だが PIA（プライバシー影響評価）が完了していないため、"
                     "リビングラボに留まる。",
                     "Complete the PIA (threshold analysis, PII flows, risks with treatments and residual "
                     "risk, sign-off)." + after,
                     "PIA を完了する（しきい値分析、個人情報の流れ、対策と残留リスクを含む"
                     "リスク評価、承認）。" + after_ja)
    return Stage("deployment", trl, done, f"TRL {trl} >= 7 with a completed privacy impact assessment.",
                 f"TRL {trl} ≧ 7 で PIA が完了している。",
                 "Keep the PIA under review as the system changes." + after,
                 "システムの変更に合わせて PIA を見直し続ける。" + after_ja)


def stage_pilots(pilots) -> pd.DataFrame:
    """Stage a list of pilots: one row each with TRL, stage, reason and next step.

    Parameters
    ----------
    pilots : DataFrame or iterable of dict
        Each with ``name``, either ``trl`` (0-9) or ``answers`` (as for :func:`assess_trl`),
        and optionally ``pia_completed`` (default False).
    """
    records = pilots.to_dict("records") if isinstance(pilots, pd.DataFrame) else list(pilots)
    rows = []
    for i, pilot in enumerate(records):
        if not isinstance(pilot, Mapping) or "name" not in pilot:
            raise ValueError(f"pilot {i} must be a dict with a 'name'. / pilot {i} は 'name' を含む辞書に"
                             "してください。")
        if "answers" in pilot and not _missing(pilot.get("answers")):
            assessment = assess_trl(pilot["answers"])
            trl, ignored = assessment.level, assessment.ignored
        elif "trl" in pilot and not _missing(pilot["trl"]):
            trl, ignored = pilot["trl"], []
            if isinstance(trl, float) and trl.is_integer():  # a DataFrame column with gaps is float
                trl = int(trl)
        else:
            raise ValueError(f"pilot {pilot['name']!r} needs 'trl' or 'answers'. "
                             f"/ pilot {pilot['name']!r} には 'trl' か 'answers' が必要です。")
        pia = pilot.get("pia_completed", False)
        stage = stage_for(trl, False if _missing(pia) else pia)
        rows.append({"name": pilot["name"], "trl": stage.trl, "pia_completed": stage.pia_completed,
                     "stage": stage.stage, "reason": stage.reason_en, "next": stage.next_en,
                     "claimed_but_not_counted": ignored})
    return pd.DataFrame(rows)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)
