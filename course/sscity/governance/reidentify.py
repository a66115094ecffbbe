"""Re-identification by linkage: join a release to an outside table that holds names.

Deleting names is not anonymisation. Sweeney (2002) re-identified a Massachusetts
governor's hospital record by joining the "anonymised" discharge data to a voter list on
ZIP code, birth date and sex. The attack here is the same join, on the survey's
quasi-identifiers (district, age group, sex, household, occupation): a released record is
**uniquely re-identified** when it is alone in its equivalence class of the release *and*
exactly one person of the outside table fits it. Whether that person is really the
respondent is checked against the ground truth, which only the teacher (the data maker)
has. APPI art. 43(5) and art. 45 forbid the maker and any recipient of anonymously
processed information to do this to real people; we do it to synthetic ones to measure
the risk before release.

The outside table is **SYNTHETIC** (:func:`make_outside_roster`): an invented list of
named residents, e.g. a community association's member list. It assumes, to show the
worst case plainly, that

- a share of the survey's respondents (default 30 %) are on the list, chosen at random, with
  their true quasi-identifiers;
- everyone else on the list is drawn from the synthetic register's margins (district x age
  group x sex) with household and occupation drawn like the survey's respondents of the
  same age group and sex;
- the list records the five quasi-identifiers in the survey's own categories, without
  error. Real lists are messier (errors, other codings), which lowers the count; bigger
  lists, or lists with exact ages, raise it.

Examples
--------
>>> from sscity.data.loaders import load_survey
>>> from sscity.governance.anonymise import Release
>>> survey = load_survey(2019)
>>> roster = make_outside_roster(survey)
>>> raw = Release.of(survey).drop_identifiers()
>>> safe = raw.generalise({"age_group": 1, "district_code": 1}).suppress_small_classes(k=5)
>>> table = compare_linkage({"identifiers deleted": raw, "k = 5": safe}, roster)
>>> int(table.loc["k = 5", "uniquely re-identified"])
0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .anonymise import SUPPRESSED, SURVEY_QUASI_IDENTIFIERS, Release

__all__ = [
    "ROSTER_SEED",
    "TRUTH_COLUMN",
    "LinkageResult",
    "compare_linkage",
    "linkage_attack",
    "make_outside_roster",
]

ROSTER_SEED = 20191201
TRUTH_COLUMN = "truth_respondent_id"  # ground truth for scoring; the attacker never uses it

# Common Japanese surnames and given names, romanised: only to make the synthetic list look
# like one. The people are invented.
_SURNAMES = ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura",
             "Kobayashi", "Kato", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue",
             "Kimura", "Hayashi", "Shimizu", "Saito", "Ikeda", "Hashimoto", "Ishikawa", "Ogawa")
_GIVEN = {"female": ("Yoko", "Keiko", "Yumi", "Akiko", "Tomoko", "Yuka", "Mai", "Haruka", "Sakura",
                     "Aoi", "Michiko", "Naomi", "Emi", "Kazuko", "Rina", "Hina"),
          "male": ("Hiroshi", "Takashi", "Kenji", "Makoto", "Shota", "Daiki", "Yuto", "Kazuo",
                   "Satoshi", "Naoki", "Ryo", "Haruto", "Minoru", "Tsuyoshi", "Kenta", "Sora")}


def make_outside_roster(survey: pd.DataFrame | None = None, register: pd.DataFrame | None = None, *,
                        share_of_respondents: float = 0.3, others: int = 3000,
                        seed: int = ROSTER_SEED) -> pd.DataFrame:
    """A SYNTHETIC outside table of named residents to attack a release with.

    Parameters
    ----------
    survey : DataFrame, optional
        The survey's respondents (default: the 2019 wave).
    register : DataFrame, optional
        Adults by district x age group x sex (default: the synthetic 2019 register).
    share_of_respondents : float
        Share of respondents on the list (0 to 1), drawn at random.
    others : int
        People on the list who did not answer the survey, drawn from the register's margins.
    seed : int

    Returns
    -------
    DataFrame
        ``name``, the quasi-identifiers, and ``truth_respondent_id`` (the respondent a row
        is, empty for the others): ground truth for scoring, never for matching.
    """
    from ..data.loaders import load_register, load_survey

    survey = load_survey(2019) if survey is None else survey
    register = load_register() if register is None else register
    if not 0 <= share_of_respondents <= 1:
        raise ValueError(f"share_of_respondents must be between 0 and 1, not {share_of_respondents}. "
                         f"/ share_of_respondents は 0〜1 です。")
    if not isinstance(others, int | np.integer) or others < 0:
        raise ValueError(f"others must be a whole number >= 0, not {others!r}. / others は0以上の整数です。")
    qi = list(SURVEY_QUASI_IDENTIFIERS)
    missing = [c for c in [*qi, "respondent_id"] if c not in survey.columns]
    missing += [c for c in ("district_code", "age_group", "sex", "population") if c not in register.columns]
    if missing:
        raise ValueError(f"Column(s) {missing} are missing from the survey or the register. "
                         f"/ 調査または台帳に列 {missing} がありません。")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(survey), size=round(share_of_respondents * len(survey)), replace=False)
    members = survey.iloc[np.sort(chosen)][qi].astype(str)
    members[TRUTH_COLUMN] = survey.iloc[np.sort(chosen)]["respondent_id"].astype(str).to_numpy()
    # the others: a cell of the register in proportion to its population ...
    cells = register[["district_code", "age_group", "sex"]].astype(str).reset_index(drop=True)
    weights = register["population"].to_numpy(dtype=float)
    drawn = cells.iloc[rng.choice(len(cells), size=others, p=weights / weights.sum())].reset_index(drop=True)
    # ... and a (household, occupation) of a respondent of the same age group and sex
    pairs = survey[["age_group", "sex", "household", "occupation"]].astype(str)
    pools = {key: group[["household", "occupation"]].to_numpy()
             for key, group in pairs.groupby(["age_group", "sex"])}
    picked = np.empty((others, 2), dtype=object)
    for (age, sex), rows in drawn.groupby(["age_group", "sex"]).groups.items():
        pool = pools.get((age, sex))
        if pool is None:
            raise ValueError(f"No respondent is {age} and {sex}; cannot draw a household for them. "
                             f"/ {age}・{sex} の回答者がいません。")
        picked[np.asarray(rows)] = pool[rng.integers(0, len(pool), len(rows))]
    drawn["household"], drawn["occupation"] = picked[:, 0], picked[:, 1]
    drawn[TRUTH_COLUMN] = pd.NA
    roster = pd.concat([members.reset_index(drop=True), drawn[[*qi, TRUTH_COLUMN]]], ignore_index=True)
    roster = roster.iloc[rng.permutation(len(roster))].reset_index(drop=True)
    names = [f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN[sex])}" for sex in roster["sex"]]
    roster.insert(0, "name", names)
    roster[TRUTH_COLUMN] = roster[TRUTH_COLUMN].astype("string")
    return roster


@dataclass(frozen=True)
class LinkageResult:
    """What a linkage attack achieved against one release.

    Attributes
    ----------
    records : int
        Records in the release.
    on_outside_list : int
        Released records whose respondent is on the outside list (ground truth): the most
        an attacker could ever re-identify.
    unique_in_release : int
        Records alone in their equivalence class.
    uniquely_reidentified : int
        Records alone in their class that exactly one listed person fits: the attacker
        names them.
    correct : int
        Of those, the ones named rightly (ground truth).
    expected_correct : float
        Expected right links if every listed person is linked to one record, drawn at random,
        of the class they fit (the prosecutor's view): a listed respondent in a class of
        size m is found with probability 1/m, so a k-anonymous release keeps this at or
        below (on the outside list) / k.
    links : DataFrame
        One row per uniquely re-identified record: release row, name given, correct or not.
    """

    records: int
    on_outside_list: int
    unique_in_release: int
    uniquely_reidentified: int
    correct: int
    expected_correct: float
    links: pd.DataFrame

    @property
    def wrong(self) -> int:
        return self.uniquely_reidentified - self.correct

    @property
    def correct_share(self) -> float:
        """Share of the released records correctly re-identified."""
        return self.correct / self.records if self.records else 0.0

    def to_series(self) -> pd.Series:
        return pd.Series({"records": self.records, "on the outside list": self.on_outside_list,
                          "unique in release": self.unique_in_release,
                          "uniquely re-identified": self.uniquely_reidentified,
                          "correctly": self.correct, "wrongly": self.wrong,
                          "expected correct (random pick in class)": round(self.expected_correct, 2),
                          "share correctly re-identified": round(self.correct_share, 4)}, dtype=object)

    def _repr_html_(self) -> str:
        return self.to_series().to_frame("linkage attack").to_html()


def _matcher(release, quasi_identifiers):
    """A function label -> set of original values (or None: any value) per column."""
    if isinstance(release, Release):
        return release.data, release.original, list(release.quasi_identifiers), \
            lambda column, label: release.value_sets[column][label]
    if not isinstance(release, pd.DataFrame):
        raise TypeError("Pass a Release or a DataFrame. / Release か DataFrame を渡してください。")
    qi = list(SURVEY_QUASI_IDENTIFIERS if quasi_identifiers is None else quasi_identifiers)
    return release, None, qi, lambda column, label: None if label == SUPPRESSED else {str(label)}


def linkage_attack(release: Release | pd.DataFrame, roster: pd.DataFrame, *,
                   quasi_identifiers: Sequence[str] | None = None, original: pd.DataFrame | None = None,
                   id_column: str = "respondent_id") -> LinkageResult:
    """Join a release to a named outside table on the quasi-identifiers and score the result.

    Parameters
    ----------
    release : Release or DataFrame
        A :class:`~sscity.governance.anonymise.Release` (its labels are matched by the sets of
        values they stand for, so ranges like ``"20-29..40-49"`` and areas like
        ``"centre"`` match the people they cover), or a DataFrame whose labels must equal the
        list's (``"*"`` matches anything).
    roster : DataFrame
        The outside table: the quasi-identifiers, ``name`` and ``truth_respondent_id``.
    quasi_identifiers : list of str, optional
        Default: the Release's, or the survey's five.
    original : DataFrame, optional
        For a DataFrame release: the personal data it came from (same row labels), for the
        ground truth. A Release carries its own.
    id_column : str
        The respondent id in ``original``.
    """
    data, truth_table, qi, members = _matcher(release, quasi_identifiers)
    truth_table = original if original is not None else truth_table
    if truth_table is None:
        raise ValueError("Give the original table (original=...) to score the attack against. "
                         "/ 採点のため original= に元の表を渡してください。")
    missing = [c for c in [*qi, "name", TRUTH_COLUMN] if c not in roster.columns]
    if missing:
        raise ValueError(f"The outside table has no column(s) {missing}. "
                         f"/ 外部の表に列 {missing} がありません。")
    if id_column not in truth_table.columns or not data.index.isin(truth_table.index).all():
        raise ValueError(f"The original table must hold {id_column!r} for every released row label. "
                         f"/ 元の表に全行の {id_column!r} が必要です。")
    listed = roster[qi].astype(str)
    masks: dict[tuple[str, str], np.ndarray] = {}

    def fits(column: str, label) -> np.ndarray:
        if (column, label) not in masks:
            allowed = members(column, label)
            masks[column, label] = np.ones(len(listed), bool) if allowed is None \
                else listed[column].isin(allowed).to_numpy()
        return masks[column, label]

    true_ids = truth_table.loc[data.index, id_column].astype(str)
    listed_ids = set(roster[TRUTH_COLUMN].dropna().astype(str))
    links = []
    classes = data.groupby(qi, observed=True, sort=False).indices
    for key, rows in classes.items():
        if len(rows) != 1:
            continue
        key = key if isinstance(key, tuple) else (key,)
        candidates = np.logical_and.reduce([fits(c, v) for c, v in zip(qi, key, strict=True)])
        if candidates.sum() == 1:
            person = roster.iloc[int(np.flatnonzero(candidates)[0])]
            row = data.index[rows[0]]
            links.append({"release row": row, "name": person["name"],
                          "correct": bool(pd.notna(person[TRUTH_COLUMN])
                                          and person[TRUTH_COLUMN] == true_ids.loc[row])})
    links_frame = pd.DataFrame(links, columns=["release row", "name", "correct"])
    # A listed respondent always fits their own class (labels are truthful and the list is
    # exact), so the prosecutor's expected hits are the listed members over the class size.
    is_listed = true_ids.isin(listed_ids).to_numpy()
    expected = sum(is_listed[rows].sum() / len(rows) for rows in classes.values())
    unique = sum(1 for rows in classes.values() if len(rows) == 1)
    return LinkageResult(records=len(data), on_outside_list=int(true_ids.isin(listed_ids).sum()),
                         unique_in_release=unique, uniquely_reidentified=len(links_frame),
                         correct=int(links_frame["correct"].sum()), expected_correct=float(expected),
                         links=links_frame)


def compare_linkage(releases: Mapping[str, Release | pd.DataFrame], roster: pd.DataFrame,
                    **options) -> pd.DataFrame:
    """Run :func:`linkage_attack` on several releases; one row each (e.g. before and after)."""
    if not releases:
        raise ValueError("Give at least one release to attack. / 少なくとも1つの公開データを渡してください。")
    rows = {name: linkage_attack(release, roster, **options).to_series()
            for name, release in releases.items()}
    return pd.DataFrame(rows).T
