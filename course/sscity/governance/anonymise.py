"""Anonymisation after Japan's APPI: what was done to a table, and what it cost.

Japan's Act on the Protection of Personal Information (APPI, 個人情報保護法) knows two kinds
of processed personal data:

- **Anonymously processed information** (匿名加工情報, art. 2(6)): nobody can identify the
  person nor restore the personal data. Art. 43(1) requires processing after the standard of
  the PPC's Enforcement Rules (施行規則) art. 34: (i) delete descriptions that identify a
  person, (ii) delete individual identification codes, (iii) delete codes that link the
  processed data to the personal data, (iv) delete unusual descriptions (e.g. a very high
  age), (v) take other measures given how records differ in the database (generalisation,
  top-coding, suppression). The maker keeps the processing method secret (art. 43(2)),
  publishes the item categories (art. 43(3)), says the data are anonymised when providing
  them (art. 43(4)) and never re-identifies (art. 43(5)). See the PPC's guidelines
  (仮名加工情報・匿名加工情報編).
- **Pseudonymously processed information** (仮名加工情報, art. 2(5), art. 41, in force
  April 2022): names and codes replaced, identifiable only with the removed information,
  which must be kept secure and apart (art. 41(2)); no provision to third parties, no
  re-identification, no contacting the persons (art. 41). :func:`pseudonymise` does the
  replacement with a keyed hash (HMAC-SHA256, RFC 2104) and returns the key table apart.

The law names no number. The measures used to judge a release come from the literature:
k-anonymity (Sweeney 2002), distinct l-diversity (Machanavajjhala et al. 2007) and
t-closeness with the Earth Mover's Distance (Li, Li & Venkatasubramanian 2007). They are
computed here with the conventions of ``pycanon`` 1.3.6 (the reference the tests compare
with): equivalence classes are the groups of equal quasi-identifier values; t is the
largest EMD of a class's distribution of the sensitive value from the whole table's, with
the *ordered distance* |i - j| / (m - 1) over the m distinct values observed in the table
for numeric (and here also ordered categorical) attributes, and the *equal distance*
(half the L1 distance) for the others. (pycanon reads row labels as positions: hand it
``release.data.reset_index(drop=True)``, not a table with suppressed rows' gaps.)

A :class:`Release` records each step (what, on which columns, under which article, how many
rows and cells it changed) and what was lost; :func:`mondrian` is LeFevre, DeWitt &
Ramakrishnan's (2006) multidimensional k-anonymiser.

Examples
--------
>>> from sscity.data.loaders import load_survey
>>> release = (Release.of(load_survey(2019))
...            .drop_identifiers()
...            .generalise({"age_group": 1, "district_code": 1})
...            .suppress_small_classes(k=5))
>>> release.k >= 5
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.tsukuba import AGE_GROUPS, DISTRICTS

__all__ = [
    "AGE_HIERARCHY",
    "DISTRICT_HIERARCHY",
    "HOUSEHOLD_HIERARCHY",
    "OCCUPATION_HIERARCHY",
    "SEX_HIERARCHY",
    "SUPPRESSED",
    "SURVEY_HIERARCHIES",
    "SURVEY_IDENTIFIERS",
    "SURVEY_QUASI_IDENTIFIERS",
    "SURVEY_SENSITIVE",
    "Hierarchy",
    "Release",
    "Step",
    "anonymity_summary",
    "discernibility",
    "equivalence_classes",
    "k_anonymity",
    "l_diversity",
    "markdown_table",
    "mondrian",
    "new_key",
    "pseudonymise",
    "t_closeness",
]

SUPPRESSED = "*"
SURVEY_IDENTIFIERS = ("respondent_id",)
SURVEY_QUASI_IDENTIFIERS = ("district_code", "age_group", "sex", "household", "occupation")
SURVEY_SENSITIVE = ("happiness",)


# --- generalisation hierarchies --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """A generalisation hierarchy: each leaf value with its labels from level 1 up to the top.

    Parameters
    ----------
    name : str
        What the values are (for messages).
    paths : mapping of str to tuple of str
        ``leaf -> (level-1 label, level-2 label, ..., top label)``; every path has the same
        length and the top label is shared (usually ``"*"``). The order of the leaves is the
        order :func:`mondrian` cuts along, so list siblings next to each other.
    ordered : bool
        Whether the leaves have a meaningful order (age groups do, districts do not).
    """

    name: str
    paths: Mapping[str, tuple[str, ...]]
    ordered: bool = False
    _members: tuple[dict[str, frozenset], ...] = field(init=False, repr=False)

    def __post_init__(self):
        heights = {len(path) for path in self.paths.values()}
        if not self.paths or len(heights) != 1 or 0 in heights:
            raise ValueError(f"Hierarchy {self.name!r}: give every leaf a path of the same, non-zero length. "
                             f"/ 階層 {self.name!r}: すべての値に同じ長さ（1以上）の経路を与えてください。")
        members: list[dict[str, frozenset]] = [{leaf: frozenset([leaf]) for leaf in self.paths}]
        height = heights.pop()
        for level in range(1, height + 1):
            groups: dict[str, set] = {}
            for leaf, path in self.paths.items():
                groups.setdefault(path[level - 1], set()).add(leaf)
            members.append({label: frozenset(leaves) for label, leaves in groups.items()})
        for level in range(1, height):  # a tree: each label has one parent
            for label, leaves in members[level].items():
                parents = {self.paths[leaf][level] for leaf in leaves}
                if len(parents) != 1:
                    raise ValueError(f"Hierarchy {self.name!r}: {label!r} at level {level} has parents "
                                     f"{sorted(parents)}; a hierarchy is a tree. / 階層は木にしてください。")
        seen: dict[str, frozenset] = {}
        for level_members in members:  # a label means one thing at whatever level it appears
            for label, leaves in level_members.items():
                if seen.setdefault(label, leaves) != leaves:
                    raise ValueError(f"Hierarchy {self.name!r}: {label!r} stands for different values at "
                                     f"different levels; rename one. / 同じラベルが別の集合を表しています。")
        if len(members[-1]) != 1:
            raise ValueError(f"Hierarchy {self.name!r}: the top level must be one label, not "
                             f"{sorted(members[-1])}. / 最上位は1つのラベルにしてください。")
        object.__setattr__(self, "_members", tuple(members))

    @property
    def leaves(self) -> tuple[str, ...]:
        """The original values, in cutting order."""
        return tuple(self.paths)

    @property
    def height(self) -> int:
        """Number of generalisation levels above the leaves."""
        return len(self._members) - 1

    def members(self, level: int) -> dict[str, frozenset]:
        """``label -> set of leaves`` at one level (0 = the leaves themselves)."""
        if not 0 <= level <= self.height:
            raise ValueError(f"Hierarchy {self.name!r} has levels 0 to {self.height}, not {level}. "
                             f"/ 階層 {self.name!r} のレベルは 0〜{self.height} です。")
        return dict(self._members[level])

    def table(self) -> pd.DataFrame:
        """One row per leaf, one column per level: the hierarchy as a printable table."""
        rows = [(leaf, *path) for leaf, path in self.paths.items()]
        return pd.DataFrame(rows, columns=[f"level {i}" for i in range(self.height + 1)])


AGE_HIERARCHY = Hierarchy("age_group", {
    "20-29": ("20-39", "20-59", "*"),
    "30-39": ("20-39", "20-59", "*"),
    "40-49": ("40-59", "20-59", "*"),
    "50-59": ("40-59", "20-59", "*"),
    "60-69": ("60-79", "60+", "*"),
    "70-79": ("60-79", "60+", "*"),
    "80+": ("80+", "60+", "*"),
}, ordered=True)
assert AGE_HIERARCHY.leaves == AGE_GROUPS
# District -> area (TX-line centre or periphery, from the district table) -> the whole city.
# The centre first, then the periphery north to south, so that siblings are neighbours.
DISTRICT_HIERARCHY = Hierarchy("district_code", {
    d.code: (d.area_type, "*") for d in sorted(DISTRICTS, key=lambda d: d.area_type != "centre")
})
HOUSEHOLD_HIERARCHY = Hierarchy("household", {
    "single": ("one_person", "*"),
    "couple": ("couple_only", "*"),
    "couple_with_children": ("with_children", "*"),
    "single_parent": ("with_children", "*"),
    "three_generation": ("other_household", "*"),
    "other": ("other_household", "*"),
})
OCCUPATION_HIERARCHY = Hierarchy("occupation", {
    "employee": ("working", "*"),
    "self_employed": ("working", "*"),
    "part_time": ("working", "*"),
    "student": ("not_working", "*"),
    "homemaker": ("not_working", "*"),
    "retired_or_unemployed": ("not_working", "*"),
})
SEX_HIERARCHY = Hierarchy("sex", {"female": ("*",), "male": ("*",)})
SURVEY_HIERARCHIES = {h.name: h for h in (DISTRICT_HIERARCHY, AGE_HIERARCHY, SEX_HIERARCHY,
                                           HOUSEHOLD_HIERARCHY, OCCUPATION_HIERARCHY)}


# --- measures (pycanon's conventions) -----------------------------------------------------------


def _as_list(columns, what: str) -> list[str]:
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    if not columns:
        raise ValueError(f"Name at least one {what} column. / {what} の列を1つ以上指定してください。")
    return columns


def _check_table(frame: pd.DataFrame, quasi_identifiers, sensitive=()) -> tuple[list[str], list[str]]:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError("Pass a pandas DataFrame. / pandas の DataFrame を渡してください。")
    qi = _as_list(quasi_identifiers, "quasi-identifier")
    if sensitive is None:
        sa = []
    else:
        sa = [sensitive] if isinstance(sensitive, str) else list(sensitive)
    missing = [c for c in qi + sa if c not in frame.columns]
    if missing:
        raise ValueError(f"The table has no column(s) {missing}; it has {list(frame.columns)}. "
                         f"/ 列 {missing} がありません。")
    if overlap := set(qi) & set(sa):
        raise ValueError(f"{sorted(overlap)} cannot be both quasi-identifier and sensitive. "
                         f"/ 準識別子と機微属性を兼ねることはできません。")
    if frame.empty:
        raise ValueError("The table is empty: there is nothing to measure. / 表が空です。")
    holes = [c for c in qi + sa if frame[c].isna().any()]
    if holes:
        raise ValueError(f"Column(s) {holes} have missing values; mark a suppressed cell with "
                         f"{SUPPRESSED!r} instead (pycanon would silently drop those rows). "
                         f"/ 列 {holes} に欠損値があります。秘匿したセルは {SUPPRESSED!r} で表してください。")
    return qi, sa


def _class_ids(frame: pd.DataFrame, qi: list[str]) -> np.ndarray:
    return frame.groupby(qi, observed=True, sort=False).ngroup().to_numpy()


def equivalence_classes(frame: pd.DataFrame, quasi_identifiers) -> pd.DataFrame:
    """The equivalence classes: each combination of quasi-identifier values and its size.

    Returns a DataFrame with the quasi-identifiers and ``size``, smallest classes first.
    """
    qi, _ = _check_table(frame, quasi_identifiers)
    sizes = frame.groupby(qi, observed=True).size().rename("size").reset_index()
    return sizes.sort_values("size", kind="stable", ignore_index=True)


def k_anonymity(frame: pd.DataFrame, quasi_identifiers) -> int:
    """k of k-anonymity: the size of the smallest equivalence class (Sweeney 2002).

    Same as ``pycanon.anonymity.k_anonymity(frame, quasi_identifiers)``.

    Examples
    --------
    >>> t = pd.DataFrame({"age": ["20-29", "20-29", "30-39"], "sex": ["f", "f", "m"]})
    >>> k_anonymity(t, ["age", "sex"])
    1
    """
    qi, _ = _check_table(frame, quasi_identifiers)
    return int(frame.groupby(qi, observed=True).size().min())


def l_diversity(frame: pd.DataFrame, quasi_identifiers, sensitive) -> int:
    """l of distinct l-diversity: the fewest distinct sensitive values in any class.

    With several sensitive columns, the smallest over them (pycanon's ``gen=True``). Same as
    ``pycanon.anonymity.l_diversity(frame, quasi_identifiers, [sensitive])``.
    """
    qi, sa = _check_table(frame, quasi_identifiers, sensitive)
    if not sa:
        raise ValueError("Name the sensitive column. / 機微属性の列を指定してください。")
    return int(frame.groupby(qi, observed=True)[sa].nunique().to_numpy().min())


def _distance_kind(values: pd.Series, distance: str) -> str:
    if distance not in ("auto", "ordered", "equal"):
        raise ValueError(f"distance must be 'auto', 'ordered' or 'equal', not {distance!r}. "
                         "/ distance は 'auto'・'ordered'・'equal' のいずれかです。")
    if distance != "auto":
        return distance
    ordered_categories = isinstance(values.dtype, pd.CategoricalDtype) and values.dtype.ordered
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return "ordered" if numeric or ordered_categories else "equal"


def _t_one(frame: pd.DataFrame, classes: np.ndarray, column: str, distance: str) -> float:
    values = frame[column]
    kind = _distance_kind(values, distance)
    if isinstance(values.dtype, pd.CategoricalDtype):
        observed = [c for c in values.cat.categories if (values == c).any()]
        codes = pd.Categorical(values, categories=observed).codes
    else:
        observed, codes = np.unique(values.to_numpy(), return_inverse=True)
    m = len(observed)
    if m == 1:  # one value everywhere: every class has the table's distribution (pycanon divides by zero)
        return 0.0
    counts = np.zeros((classes.max() + 1, m))
    np.add.at(counts, (classes, codes), 1)
    q = counts / counts.sum(axis=1, keepdims=True)
    p = np.bincount(codes, minlength=m) / len(codes)
    if kind == "equal":
        emd = 0.5 * np.abs(q - p).sum(axis=1)
    else:  # ordered distance: EMD = sum of |cumulative differences| / (m - 1) (Li et al. 2007)
        emd = np.abs(np.cumsum(q - p, axis=1)).sum(axis=1) / (m - 1)
    return float(emd.max())


def t_closeness(frame: pd.DataFrame, quasi_identifiers, sensitive, *, distance: str = "auto") -> float:
    """t of t-closeness: the largest Earth Mover's Distance of a class from the whole table.

    Parameters
    ----------
    frame : DataFrame
    quasi_identifiers : list of str
    sensitive : str or list of str
        With several, the largest t over them (pycanon's ``gen=True``).
    distance : {"auto", "ordered", "equal"}
        The ground distance between sensitive values (Li et al. 2007). ``"ordered"``:
        |i - j| / (m - 1) over the m distinct values *observed in the table*, in their order
        (e.g. happiness 0-10); ``"equal"``: every two values 1 apart, so the EMD is half the
        L1 distance. ``"auto"`` (default) takes ``"ordered"`` for numeric columns and ordered
        categoricals, ``"equal"`` otherwise. pycanon 1.3.6 does the same for numeric and
        string columns; it treats an ordinal stored as *text* as equal-distance, and raises
        (division by zero) when the sensitive column has one value, where this returns 0.

    Returns
    -------
    float between 0 and 1.
    """
    qi, sa = _check_table(frame, quasi_identifiers, sensitive)
    if not sa:
        raise ValueError("Name the sensitive column. / 機微属性の列を指定してください。")
    classes = _class_ids(frame, qi)
    return max(_t_one(frame, classes, column, distance) for column in sa)


def discernibility(frame: pd.DataFrame, quasi_identifiers, *, suppressed: int = 0,
                   original_rows: int | None = None) -> int:
    """The discernibility metric C_DM (LeFevre et al. 2006): sum of squared class sizes.

    Each suppressed record costs the size of the original table (``original_rows``, by
    default the rows here plus the suppressed ones). Smaller is more useful; the raw table of
    n distinct records scores n.
    """
    qi, _ = _check_table(frame, quasi_identifiers)
    sizes = frame.groupby(qi, observed=True).size().to_numpy()
    total = len(frame) + suppressed if original_rows is None else original_rows
    return int((sizes.astype(np.int64) ** 2).sum() + suppressed * total)


def anonymity_summary(frame: pd.DataFrame, quasi_identifiers, sensitive=None) -> pd.Series:
    """Records, classes, unique records, k, and (with a sensitive column) l and t, as a Series."""
    qi, sa = _check_table(frame, quasi_identifiers, sensitive)
    sizes = frame.groupby(qi, observed=True).size()
    summary = {"records": len(frame), "equivalence classes": len(sizes),
               "records unique on the quasi-identifiers": int((sizes == 1).sum()),
               "k (k-anonymity)": int(sizes.min())}
    if sa:
        summary["l (distinct l-diversity)"] = l_diversity(frame, qi, sa)
        summary["t (t-closeness, EMD)"] = round(t_closeness(frame, qi, sa), 6)
    return pd.Series(summary, name="value", dtype=object)


# --- pseudonymisation (仮名加工情報) ----------------------------------------------------------------


def new_key() -> bytes:
    """A fresh random 32-byte key for :func:`pseudonymise` (store it apart from the data)."""
    return secrets.token_bytes(32)


def pseudonymise(frame: pd.DataFrame, column: str = "respondent_id", *, key: bytes,
                 prefix: str = "P-", digits: int = 16) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace an identifier by a keyed pseudonym, HMAC-SHA256(key, id) (APPI art. 2(5), 41).

    The same id always gets the same pseudonym under the same key, so a pseudonymised table
    can still be analysed and linked *inside* the organisation; without the key nobody can
    recompute it from a list of ids (a plain hash could be: hash every id and compare).

    Parameters
    ----------
    frame : DataFrame
    column : str
        The identifier to replace.
    key : bytes
        At least 32 bytes (RFC 2104 discourages keys shorter than the hash, 32 bytes for
        SHA-256). Keep it apart from the data, with the key table: together they are the
        "deleted information" (削除情報等) of art. 41(2).
    prefix : str
    digits : int
        Hex digits kept of the 64-digit HMAC (8 to 64); a collision raises.

    Returns
    -------
    (pseudonymised, key_table)
        The table with ``column`` replaced, and a separate ``(pseudonym, column)`` table that
        re-identifies it. Never ship the key table with the data.
    """
    if not isinstance(key, bytes | bytearray) or len(key) < 32:
        raise ValueError("Give a key of at least 32 bytes, e.g. new_key(). / 32バイト以上の鍵を渡してください"
                         "（例: new_key()）。")
    if not 8 <= digits <= 64:
        raise ValueError(f"digits must be 8 to 64, not {digits}. / digits は 8〜64 です。")
    if column not in frame.columns:
        raise ValueError(f"The table has no column {column!r}. / 列 {column!r} がありません。")
    if frame[column].isna().any():
        raise ValueError(f"{column!r} has missing ids; a record without an id cannot be pseudonymised. "
                         f"/ {column!r} に欠損があります。")
    ids = frame[column].astype(str)
    unique = pd.unique(ids)
    table = {i: prefix + hmac.new(bytes(key), i.encode(), hashlib.sha256).hexdigest()[:digits]
             for i in unique}
    if len(set(table.values())) != len(table):
        raise ValueError("Two ids got the same pseudonym; keep more digits. / 仮名が衝突しました。"
                         "digits を増やしてください。")
    out = frame.copy()
    out[column] = ids.map(table)
    key_table = pd.DataFrame({"pseudonym": list(table.values()), column: list(table)})
    return out, key_table


# --- the release: steps, value sets, losses ------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One processing step of a :class:`Release`."""

    action: str
    basis: str
    columns: tuple[str, ...]
    rows_before: int
    rows_after: int
    cells_changed: int
    detail: str

    @property
    def rows_removed(self) -> int:
        return self.rows_before - self.rows_after


def _leaf_domain(frame: pd.DataFrame, column: str, hierarchy: Hierarchy | None) -> tuple[list, bool]:
    values = frame[column]
    if hierarchy is not None:
        unknown = sorted(set(values.astype(str)) - set(hierarchy.leaves))
        if unknown:
            raise ValueError(f"{column!r} has values {unknown} that its hierarchy does not know; add them. "
                             f"/ {column!r} の値 {unknown} が階層にありません。")
        return list(hierarchy.leaves), hierarchy.ordered
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(c) for c in values.cat.categories], bool(values.dtype.ordered)
    if pd.api.types.is_numeric_dtype(values):
        return [str(v) for v in np.unique(values.to_numpy())], True
    return sorted(set(values.astype(str))), False


@dataclass(frozen=True, eq=False)
class Release:
    """A table on its way to release, with every step recorded (see the module docstring).

    Build it with :meth:`of`; each method returns a new Release (the old one is unchanged).
    ``data`` keeps the original row labels, so nothing is lost or added unseen: rows only
    leave through a recorded suppression step.

    Attributes
    ----------
    original : DataFrame
        The personal data (kept by the maker, never released).
    data : DataFrame
        The table as it stands. Quasi-identifiers are text labels; ``"*"`` is fully suppressed.
    quasi_identifiers, sensitive : tuple of str
    steps : tuple of Step
    value_sets : dict
        For each quasi-identifier, ``label -> frozenset of original values`` it stands for.
    domains : dict
        For each quasi-identifier, its original values in order.
    """

    original: pd.DataFrame
    data: pd.DataFrame
    quasi_identifiers: tuple[str, ...]
    sensitive: tuple[str, ...]
    steps: tuple[Step, ...]
    value_sets: Mapping[str, Mapping[str, frozenset]]
    domains: Mapping[str, tuple[str, ...]]
    ordered: Mapping[str, bool]
    hierarchies: Mapping[str, Hierarchy]
    levels: Mapping[str, int]

    @classmethod
    def of(cls, frame: pd.DataFrame, quasi_identifiers: Sequence[str] = SURVEY_QUASI_IDENTIFIERS,
           sensitive: Sequence[str] | str = SURVEY_SENSITIVE,
           hierarchies: Mapping[str, Hierarchy] | None = None) -> Release:
        """Start a release from personal data (defaults: the happiness survey's columns).

        ``hierarchies`` defaults to :data:`SURVEY_HIERARCHIES` for the columns it knows.
        """
        qi, sa = _check_table(frame, quasi_identifiers, sensitive)
        if not frame.index.is_unique:
            raise ValueError("The table's row labels repeat; reset the index first. "
                             "/ 行ラベルが重複しています。reset_index してください。")
        known = dict(SURVEY_HIERARCHIES if hierarchies is None else hierarchies)
        used = {c: known[c] for c in qi if c in known}
        data = frame.copy()
        domains, ordered, value_sets = {}, {}, {}
        for column in qi:
            domain, is_ordered = _leaf_domain(frame, column, used.get(column))
            domains[column], ordered[column] = tuple(domain), is_ordered
            value_sets[column] = {v: frozenset([v]) for v in domain}
            data[column] = frame[column].astype(str).astype(object)
        return cls(original=frame, data=data, quasi_identifiers=tuple(qi), sensitive=tuple(sa), steps=(),
                   value_sets=value_sets, domains=domains, ordered=ordered, hierarchies=used,
                   levels={c: 0 for c in used})

    # -- bookkeeping

    def _next(self, data: pd.DataFrame, step: Step, **changes) -> Release:
        missing = data.index.difference(self.data.index)
        if len(missing):  # a step may remove rows, never invent them
            raise AssertionError(f"rows {list(missing)[:5]} appeared from nowhere")
        return dataclasses.replace(self, data=data, steps=(*self.steps, step), **changes)

    def _changed(self, new: pd.DataFrame, columns: Iterable[str]) -> int:
        old = self.data.loc[new.index]
        return int(sum((old[c].astype(str) != new[c].astype(str)).sum() for c in columns))

    @property
    def k(self) -> int:
        return k_anonymity(self.data, self.quasi_identifiers)

    @property
    def l(self) -> int:  # noqa: E743 - the letter of the measure
        return l_diversity(self.data, self.quasi_identifiers, self.sensitive)

    @property
    def t(self) -> float:
        return t_closeness(self.data, self.quasi_identifiers, self.sensitive)

    @property
    def suppressed_rows(self) -> pd.Index:
        """Row labels of the original that are not in the release."""
        return self.original.index.difference(self.data.index)

    # -- APPI steps

    def drop_identifiers(self, columns: Sequence[str] = SURVEY_IDENTIFIERS) -> Release:
        """Delete identifying descriptions, identification codes and linking codes.

        PPC rules art. 34(i)-(iii). The survey's ``respondent_id`` identifies a respondent and
        links the record to the mailed sample, so it goes.
        """
        return self.drop_columns(columns, action="delete identifiers and linking codes",
                                 basis="APPI art. 43(1); PPC rules art. 34(i)-(iii)")

    def drop_columns(self, columns: Sequence[str], *, action: str = "delete columns",
                     basis: str = "PPC rules art. 34(v)", detail: str = "") -> Release:
        """Delete other columns (e.g. ``design_weight``: one value per district, so it would
        reveal a generalised district)."""
        columns = _as_list(columns, "column")
        missing = [c for c in columns if c not in self.data.columns]
        if missing:
            raise ValueError(f"The table has no column(s) {missing}. / 列 {missing} がありません。")
        kept = [c for c in columns if c in self.quasi_identifiers + self.sensitive]
        if kept:
            raise ValueError(f"{kept} are quasi-identifiers or sensitive; generalise or suppress them, or "
                             f"start a Release without them. / {kept} は準識別子・機微属性です。")
        data = self.data.drop(columns=columns)
        step = Step(action, basis, tuple(columns), len(self.data), len(data),
                    int(self.data[columns].notna().sum().sum()),
                    detail or f"{len(columns)} column(s) deleted")
        return self._next(data, step)

    def generalise(self, levels: Mapping[str, int]) -> Release:
        """Generalise quasi-identifiers to a level of their hierarchy, e.g. ``{"age_group": 1}``.

        PPC rules art. 34(v). Level 0 is the original value; the top level is ``"*"``.
        """
        release = self
        for column, level in levels.items():
            release = release._generalise_one(column, level)
        return release

    def _generalise_one(self, column: str, level: int) -> Release:
        if column not in self.hierarchies:
            raise ValueError(f"{column!r} has no hierarchy; the ones known are {sorted(self.hierarchies)}. "
                             f"/ {column!r} には階層がありません。")
        hierarchy = self.hierarchies[column]
        target = hierarchy.members(level)
        leaf_to_label = {leaf: label for label, leaves in target.items() for leaf in leaves}
        mapping = {}
        for label in pd.unique(self.data[column]):
            parents = {leaf_to_label[leaf] for leaf in self.value_sets[column][label]}
            if len(parents) != 1:
                raise ValueError(f"{column!r} value {label!r} spans {sorted(parents)} at level {level}: "
                                 f"generalise further, or generalise before top-coding or Mondrian. "
                                 f"/ {label!r} はレベル {level} の複数の区分にまたがります。")
            mapping[label] = parents.pop()
        data = self.data.copy()
        data[column] = data[column].map(mapping)
        sets = dict(self.value_sets[column])
        sets.update(target)
        step = Step("generalise", "PPC rules art. 34(v)", (column,), len(self.data), len(data),
                    self._changed(data, [column]),
                    f"{column} to level {level} of {hierarchy.height}: "
                    + ", ".join(sorted({v for v in mapping.values()})))
        return self._next(data, step, value_sets={**self.value_sets, column: sets},
                          levels={**self.levels, column: max(level, self.levels[column])})

    def top_code(self, column: str, at, *, label: str | None = None) -> Release:
        """Top-code a column: every value at or above ``at`` becomes one value.

        For a quasi-identifier (e.g. ``top_code("age_group", "70-79")`` -> ``"70+"``) the
        values at and above ``at`` in its order merge into ``label``; for a numeric column the
        values above ``at`` become ``at``. PPC rules art. 34(iv): unusual descriptions.
        """
        if column not in self.data.columns:
            raise ValueError(f"The table has no column {column!r}. / 列 {column!r} がありません。")
        data = self.data.copy()
        if column not in self.quasi_identifiers:
            if not pd.api.types.is_numeric_dtype(data[column]):
                raise ValueError(f"{column!r} is neither a quasi-identifier nor numeric: "
                                 f"nothing to top-code. /  {column!r} はトップコーディングできません。")
            data[column] = data[column].clip(upper=at)
            step = Step("top-code", "PPC rules art. 34(iv)", (column,), len(self.data), len(data),
                        self._changed(data, [column]), f"{column} above {at} set to {at}")
            return self._next(data, step)
        domain = self.domains[column]
        if str(at) not in domain:
            raise ValueError(f"{at!r} is not a value of {column!r}; its values are {list(domain)}. "
                             f"/ {at!r} は {column!r} の値ではありません。")
        if not self.ordered[column]:
            raise ValueError(f"{column!r} has no order, so 'at or above' means nothing; generalise it. "
                             f"/ {column!r} は順序のない属性です。一般化してください。")
        first = domain.index(str(at))
        top = frozenset(domain[first:])
        new_label = label or (str(at).split("-")[0] + "+" if "-" in str(at) else f">={at}")
        mapping = {}
        for value in pd.unique(data[column]):
            members = self.value_sets[column][value]
            if members <= top:
                mapping[value] = new_label
            elif members & top:
                raise ValueError(f"{column!r} value {value!r} straddles {at!r}; top-code at its boundary. "
                                 f"/ {value!r} が {at!r} をまたいでいます。")
        data[column] = data[column].replace(mapping)
        sets = {**self.value_sets[column], new_label: top}
        step = Step("top-code", "PPC rules art. 34(iv)", (column,), len(self.data), len(data),
                    self._changed(data, [column]), f"{column} {at} and above -> {new_label}")
        return self._next(data, step, value_sets={**self.value_sets, column: sets})

    def suppress_small_classes(self, k: int, *, max_share: float | None = None) -> Release:
        """Suppress (delete) the records of equivalence classes smaller than ``k``.

        ``max_share`` (e.g. 0.05): refuse to delete more than that share of the records and
        ask for more generalisation instead, since deleted records bias every analysis.
        """
        _check_k(k)
        sizes = self.data.groupby(list(self.quasi_identifiers), observed=True)[self.quasi_identifiers[0]] \
            .transform("size")
        small = sizes < k
        if max_share is not None and small.mean() > max_share:
            raise ValueError(f"Suppression for k = {k} would delete {small.sum()} of {len(small)} records "
                             f"({small.mean():.1%} > {max_share:.0%}); generalise more first. "
                             f"/ 削除が多すぎます。先に一般化してください。")
        data = self.data.loc[~small]
        step = Step("suppress records", "PPC rules art. 34(iv)-(v)", self.quasi_identifiers, len(self.data),
                    len(data), int(small.sum()) * self.data.shape[1],
                    f"{int(small.sum())} records in classes smaller than {k} deleted")
        return self._next(data, step)

    def mondrian(self, k: int) -> Release:
        """Generalise all quasi-identifiers with Mondrian (LeFevre et al. 2006) until k-anonymous."""
        _check_k(k)
        if len(self.data) < k:
            raise ValueError(f"{len(self.data)} records cannot form a class of {k}. "
                             f"/ {len(self.data)} 件では {k} 件のクラスを作れません。")
        qi = list(self.quasi_identifiers)
        orders = {c: sorted(pd.unique(self.data[c]), key=lambda v, c=c: self._position(c, v)) for c in qi}
        codes = np.column_stack([pd.Categorical(self.data[c], categories=orders[c]).codes for c in qi])
        spans = np.array([max(len(orders[c]) - 1, 1) for c in qi], dtype=float)
        parts = _mondrian_partitions(codes, k, spans)
        data = self.data.copy()
        value_sets = {c: dict(self.value_sets[c]) for c in qi}
        for j, column in enumerate(qi):
            released = np.empty(len(data), dtype=object)
            for part in parts:
                lo, hi = codes[part, j].min(), codes[part, j].max()
                if self.ordered[column]:
                    labels = orders[column][lo:hi + 1]
                    text = labels[0] if lo == hi else f"{labels[0]}..{labels[-1]}"
                else:
                    labels = [orders[column][i] for i in np.unique(codes[part, j])]
                    text = "|".join(labels)
                value_sets[column][text] = frozenset().union(*(self.value_sets[column][v] for v in labels))
                released[part] = text
            data[column] = released
        step = Step("Mondrian k-anonymisation", "PPC rules art. 34(v)", tuple(qi), len(self.data), len(data),
                    self._changed(data, qi), f"k = {k}: {len(parts)} partitions (LeFevre et al. 2006)")
        return self._next(data, step, value_sets=value_sets)

    def _position(self, column: str, label: str) -> tuple[int, int]:
        positions = [self.domains[column].index(v) for v in self.value_sets[column][label]]
        return min(positions), max(positions)

    # -- reports

    def leaks(self) -> pd.DataFrame:
        """Other columns that still tell a quasi-identifier the release has coarsened.

        A column that is neither a quasi-identifier nor sensitive, and that maps every value to
        exactly one original value of a quasi-identifier, gives that quasi-identifier back
        whatever the release did to it: in the survey, ``district`` (the name) and
        ``design_weight`` (one value per district) give ``district_code`` back. Drop such columns
        (:meth:`drop_columns`) before release.

        Returns
        -------
        pandas.DataFrame
            One row per leaking pair: ``column``, ``reveals``, ``values_released`` (distinct
            values of the quasi-identifier in the release) and ``values_revealed`` (distinct
            original values the column tells apart). Empty when nothing leaks.
        """
        rows = []
        others = [c for c in self.data.columns if c not in self.quasi_identifiers + self.sensitive]
        kept = self.original.loc[self.data.index]
        for column in others:
            for qi in self.quasi_identifiers:
                released = self.data[qi].nunique(dropna=False)
                revealed = kept[qi].nunique(dropna=False)
                if revealed <= released:
                    continue  # not coarsened: nothing to give back
                per_value = kept.groupby(kept[column].astype(str), dropna=False)[qi].nunique(dropna=False)
                if len(per_value) > released and (per_value == 1).all():
                    rows.append({"column": column, "reveals": qi, "values_released": int(released),
                                 "values_revealed": int(min(revealed, len(per_value)))})
        return pd.DataFrame(rows, columns=["column", "reveals", "values_released", "values_revealed"])

    def report(self) -> pd.DataFrame:
        """What was done: one row per step."""
        rows = [{"step": i, "action": s.action, "basis (APPI)": s.basis, "columns": ", ".join(s.columns),
                 "rows before": s.rows_before, "rows after": s.rows_after, "rows removed": s.rows_removed,
                 "cells changed": s.cells_changed, "detail": s.detail} for i, s in enumerate(self.steps, 1)]
        return pd.DataFrame(rows, columns=["step", "action", "basis (APPI)", "columns", "rows before",
                                           "rows after", "rows removed", "cells changed", "detail"])

    def certainty_penalty(self) -> pd.Series:
        """Normalised certainty penalty per quasi-identifier (Xu et al. 2006): the mean over
        released records of (values a label stands for - 1) / (values in the domain - 1);
        0 = exact, 1 = fully suppressed."""
        penalty = {}
        for column in self.quasi_identifiers:
            width = max(len(self.domains[column]) - 1, 1)
            sizes = self.data[column].map(lambda v, c=column: len(self.value_sets[c][v]))
            penalty[column] = float(((sizes - 1) / width).mean()) if len(sizes) else 1.0
        return pd.Series(penalty, name="NCP")

    def losses(self) -> pd.DataFrame:
        """What was lost: measures of the original and of the release, side by side."""
        qi = list(self.quasi_identifiers)
        before = Release.of(self.original, qi, self.sensitive, self.hierarchies)
        rows = []
        for name, b, a in [("records", len(self.original), len(self.data)),
                           ("records suppressed", 0, len(self.suppressed_rows)),
                           ("columns", self.original.shape[1], self.data.shape[1])]:
            rows.append((name, b, a))
        summary_before = anonymity_summary(before.data, qi, self.sensitive)
        summary_after = anonymity_summary(self.data, qi, self.sensitive) if len(self.data) else None
        for name in summary_before.index.drop("records"):
            rows.append((name, summary_before[name], None if summary_after is None else summary_after[name]))
        rows.append(("discernibility C_DM", discernibility(before.data, qi),
                     discernibility(self.data, qi, suppressed=len(self.suppressed_rows),
                                    original_rows=len(self.original)) if len(self.data) else None))
        penalty = self.certainty_penalty()
        for column in qi:
            rows.append((f"distinct values: {column}", before.data[column].nunique(),
                         self.data[column].nunique()))
        for column in qi:
            rows.append((f"certainty penalty (NCP): {column}", 0.0, round(penalty[column], 4)))
        for column, level in self.levels.items():
            rows.append((f"generalisation height: {column}", 0,
                         f"{level} of {self.hierarchies[column].height}"))
        return pd.DataFrame(rows, columns=["measure", "before", "after"], dtype=object).set_index("measure")

    def to_markdown(self) -> str:
        """The report as bilingual Markdown: steps, losses, and the duties that remain."""
        items = ", ".join(f"`{c}`" for c in self.data.columns)
        return "\n".join([
            "## Anonymisation report / 匿名加工の記録", "",
            "### What was done / 行った加工", "", markdown_table(self.report()), "",
            "### What was lost / 失われたもの", "", markdown_table(self.losses().reset_index()), "",
            "### Duties that remain / 残る義務", "",
            f"- Publish the item categories (APPI art. 43(3)) / 項目を公表する: {items}.",
            "- Keep the processing method secret and secure (art. 43(2)) / 加工方法等情報を安全に管理する.",
            "- Say that it is anonymously processed information when providing it (art. 43(4)) "
            "/ 提供時に匿名加工情報であることを明示する.",
            "- Never try to re-identify anyone (art. 43(5)) / 識別行為をしない.",
        ])

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _check_k(k) -> None:
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a whole number of at least 1, not {k!r}. / k は1以上の整数です。")


def _median_cut(values: np.ndarray, k: int) -> int | None:
    """The allowable cut nearest the median: largest value of the left part, or None."""
    distinct, counts = np.unique(values, return_counts=True)
    left = np.cumsum(counts)[:-1]  # records at or below each candidate cut
    n = len(values)
    allowed = (left >= k) & (n - left >= k)
    if not allowed.any():
        return None
    candidates = np.flatnonzero(allowed)
    best = candidates[np.argmin(np.abs(left[candidates] - n / 2))]
    return int(distinct[best])


def _mondrian_partitions(codes: np.ndarray, k: int, spans: np.ndarray) -> list[np.ndarray]:
    """Strict multidimensional partitioning (LeFevre, DeWitt & Ramakrishnan 2006, fig. 4).

    Cut the dimension with the widest normalised range at its median; if that cut would
    leave fewer than k records on a side, try the next widest; stop when no cut is allowed.
    With ties the median moves to the nearest allowable boundary between distinct values.
    """
    done, todo = [], [np.arange(len(codes))]
    while todo:
        part = todo.pop()
        sub = codes[part]
        widths = (sub.max(axis=0) - sub.min(axis=0)) / spans
        for dim in np.argsort(-widths, kind="stable"):
            cut = _median_cut(sub[:, dim], k) if widths[dim] > 0 else None
            if cut is not None:
                todo += [part[sub[:, dim] > cut], part[sub[:, dim] <= cut]]
                break
        else:  # no allowable cut in any dimension: a final partition
            done.append(part)
    return done


def mondrian(frame: pd.DataFrame, quasi_identifiers: Sequence[str], k: int,
             hierarchies: Mapping[str, Hierarchy] | None = None) -> pd.DataFrame:
    """Mondrian k-anonymisation of a table (LeFevre, DeWitt & Ramakrishnan 2006).

    The records are split recursively, each time on the quasi-identifier with the widest
    normalised range, at the median, as long as both halves keep at least ``k`` records.
    Each final partition is released with one label per quasi-identifier: ``"20-29..40-49"``
    for a range of an ordered attribute, ``"couple|single"`` for the values of an unordered
    one (cut along its hierarchy's leaf order, a simplification of the paper's
    hierarchy-based cuts). No record is suppressed: every class has at least k records.

    Returns the table with the quasi-identifiers replaced (same rows, same index).
    """
    release = Release.of(frame, quasi_identifiers, (), hierarchies).mondrian(k)
    return release.data


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (without the tabulate package)."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
