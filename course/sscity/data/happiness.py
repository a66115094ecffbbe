"""Generator of the SYNTHETIC resident happiness survey of Tsukuba (waves 2015, 2017, 2019).

No microdata of the city's survey is public. These files are invented, respondent by
respondent, so that

- the 2019 respondents reproduce the published figures of the seed deck **exactly**:
  1,481 respondents; mean happiness 6.94 (0-10); 1,069 answering 6-10 ("happy", 72.2 %);
  health 1,066, family 741, household finances 584, mental leeway 543 (multiple answers);
- the structure is plausible, not noise: happiness rises with self-rated health, is lower
  for people living alone and in the older peripheral districts, falls with age after the
  30s; older peripheral residents and the young answer the mailed questionnaire less
  often, so weighting and raking change the estimates visibly;
- the waves differ plausibly (a slow rise from 2015 to 2019, within sampling noise between
  neighbouring waves).

Design (all synthetic): a mailed questionnaire to adults aged 20+ drawn at random from the
resident register, stratified by district with equal allocation (400 per district in 2015
and 2017, 450 in 2019), so the design weight N_d / n_d differs by district.
Every random choice comes from ``numpy.random.default_rng(seed)``; ``sscity data build``
rewrites the files byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .tsukuba import AGE_GROUPS, BY_CODE, DISTRICTS, make_register

__all__ = [
    "PUBLISHED_2019",
    "SURVEY_SEED",
    "WAVES",
    "WEIGH_OPTIONS",
    "make_wave",
    "write_survey",
]

SURVEY_SEED = 20191101

# The deck's figures for 2019 (seed deck, QoL evaluation slide).
PUBLISHED_2019 = {
    "respondents": 1481,
    "mean_happiness": 6.94,
    "happy_count": 1069,  # answering 6-10; 72.2 %
    "weigh_health": 1066,
    "weigh_family": 741,
    "weigh_finances": 584,
    "weigh_leeway": 543,
}

# Per wave: mailed per district, respondents, target mean (2015 and 2017 are synthetic).
WAVES = {
    2015: {"mailed_per_district": 400, "respondents": 1352, "mean": 6.80},
    2017: {"mailed_per_district": 400, "respondents": 1418, "mean": 6.87},
    2019: {"mailed_per_district": 450, "respondents": 1481, "mean": 6.94},
}

# Options of "what do you weigh most in judging your happiness?" (the deck's heading:
# 幸福度を判断する際に特に重視すること). Only the first four, with the deck's labels and counts,
# were published for Tsukuba 2019; the other seven (modelled on the Cabinet Office's national
# list, which the city's question most likely follows) and all their counts are synthetic.
# (column, Japanese label, 2019 count)
WEIGH_OPTIONS = (
    ("weigh_health", "健康状況", 1066),
    ("weigh_family", "家族関係", 741),
    ("weigh_finances", "家計の状況", 584),
    ("weigh_leeway", "精神的ゆとり", 543),
    ("weigh_free_time", "自由な時間・充実した余暇", 468),
    ("weigh_employment", "就業状況", 402),
    ("weigh_friends", "友人関係", 371),
    ("weigh_purpose", "趣味・社会貢献などの生きがい", 342),
    ("weigh_work_fulfilment", "仕事の充実度", 296),
    ("weigh_community", "地域コミュニティとの関係", 187),
    ("weigh_workplace", "職場の人間関係", 164),
)

HOUSEHOLDS = ("single", "couple", "couple_with_children", "single_parent", "three_generation",
              "other")
OCCUPATIONS = ("employee", "self_employed", "part_time", "student", "homemaker",
               "retired_or_unemployed")

_AGE_INDEX = {age: i for i, age in enumerate(AGE_GROUPS)}

# P(household | age group), rows follow AGE_GROUPS, columns HOUSEHOLDS.
_HOUSEHOLD_BY_AGE = np.array([
    [0.52, 0.10, 0.06, 0.02, 0.06, 0.24],   # 20-29 (many students live alone)
    [0.22, 0.18, 0.45, 0.04, 0.06, 0.05],
    [0.14, 0.10, 0.58, 0.07, 0.08, 0.03],
    [0.13, 0.20, 0.46, 0.06, 0.12, 0.03],
    [0.14, 0.42, 0.22, 0.03, 0.16, 0.03],
    [0.17, 0.48, 0.12, 0.02, 0.19, 0.02],
    [0.26, 0.34, 0.08, 0.02, 0.27, 0.03],
])
# P(occupation | age group), columns OCCUPATIONS.
_OCCUPATION_BY_AGE = np.array([
    [0.40, 0.02, 0.14, 0.38, 0.02, 0.04],
    [0.66, 0.06, 0.12, 0.03, 0.10, 0.03],
    [0.64, 0.08, 0.14, 0.00, 0.10, 0.04],
    [0.60, 0.10, 0.15, 0.00, 0.09, 0.06],
    [0.32, 0.12, 0.18, 0.00, 0.12, 0.26],
    [0.08, 0.10, 0.10, 0.00, 0.14, 0.58],
    [0.02, 0.05, 0.02, 0.00, 0.11, 0.80],
])
# P(self-rated health 1 = very good ... 5 = poor | age group).
_HEALTH_BY_AGE = np.array([
    [0.36, 0.40, 0.18, 0.05, 0.01],
    [0.30, 0.42, 0.20, 0.06, 0.02],
    [0.24, 0.42, 0.24, 0.08, 0.02],
    [0.18, 0.40, 0.28, 0.11, 0.03],
    [0.14, 0.38, 0.31, 0.13, 0.04],
    [0.10, 0.33, 0.34, 0.17, 0.06],
    [0.06, 0.24, 0.36, 0.24, 0.10],
])

# Effects on the latent happiness score (points on the 0-10 scale).
_AGE_EFFECT = np.array([0.10, 0.35, 0.15, -0.10, -0.10, -0.25, -0.45])
_DISTRICT_EFFECT = {"tsukuba": -0.45, "oho": -0.15, "toyosato": -0.05, "sakura": 0.25,
                    "yatabe": 0.20, "kukizaki": -0.50}
_HOUSEHOLD_EFFECT = {"single": -0.65, "couple": 0.30, "couple_with_children": 0.40,
                     "single_parent": -0.75, "three_generation": 0.15, "other": -0.20}
_OCCUPATION_EFFECT = {"employee": 0.10, "self_employed": 0.0, "part_time": -0.20,
                      "student": 0.25, "homemaker": 0.15, "retired_or_unemployed": -0.35}
_HEALTH_EFFECT = np.array([1.05, 0.45, -0.15, -1.05, -2.0])
_WAVE_SD = 1.45

# Response propensity (log-odds): the young and, above all, the old in the periphery
# answer less; people in poor health answer less.
_RESPONSE_AGE = np.array([-0.95, -0.55, -0.25, 0.0, 0.30, 0.10, -0.55])
_RESPONSE_OLD_PERIPHERY = -0.70  # extra for 70-79 and 80+ outside the TX-line centre
_RESPONSE_HEALTH = np.array([0.10, 0.10, 0.0, -0.25, -0.60])


def _choose_exactly(rng, logits: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask with exactly k True, drawn without replacement with weights exp(logit).

    The Gumbel-top-k trick: add Gumbel noise to the log-weights and keep the k largest.
    """
    if not 0 <= k <= len(logits):
        raise ValueError(f"cannot choose {k} of {len(logits)}")
    keys = logits + rng.gumbel(size=len(logits))
    mask = np.zeros(len(logits), dtype=bool)
    mask[np.argsort(-keys, kind="stable")[:k]] = True
    return mask


def _mailed_sample(rng, register: pd.DataFrame, per_district: int) -> pd.DataFrame:
    parts = []
    for district in DISTRICTS:
        cells = register[register["district_code"] == district.code].reset_index(drop=True)
        counts = rng.multivariate_hypergeometric(cells["population"].to_numpy(), per_district)
        rows = cells.loc[np.repeat(np.arange(len(cells)), counts), ["district", "district_code",
                                                                    "age_group", "sex"]]
        rows["design_weight"] = round(cells["population"].sum() / per_district, 4)
        parts.append(rows.iloc[rng.permutation(len(rows))])
    return pd.concat(parts, ignore_index=True)


def _draw(rng, probabilities: np.ndarray, labels) -> np.ndarray:
    """One label per row, each row with its own probability vector."""
    cumulative = probabilities.cumsum(axis=1)
    cumulative[:, -1] = 1.0
    index = (rng.random((len(probabilities), 1)) > cumulative).sum(axis=1)
    return np.asarray(labels, dtype=object)[index]


def _fix_to_published(happiness: np.ndarray, latent: np.ndarray) -> np.ndarray:
    """Move as few answers as possible, one point each, to hit the 2019 figures exactly.

    First the number answering 6-10 (moving people across the 5|6 line whose latent score
    lies nearest to it), then the sum (raising or lowering by one point the answers whose
    latent score is furthest from their rounded value, never across the 5|6 line).
    """
    h = happiness.copy()
    target_happy = PUBLISHED_2019["happy_count"]
    n = len(h)
    # 1. the count at 6-10
    while (surplus := int((h >= 6).sum()) - target_happy) != 0:
        if surplus > 0:
            candidates = np.flatnonzero(h == 6)
            pick = candidates[np.argsort(latent[candidates], kind="stable")[:surplus]]
            h[pick] = 5
        else:
            candidates = np.flatnonzero(h == 5)
            pick = candidates[np.argsort(-latent[candidates], kind="stable")[:-surplus]]
            h[pick] = 6
    # 2. the sum: mean 6.94 to two decimals
    target_sum = int(round(PUBLISHED_2019["mean_happiness"] * n))
    gap = target_sum - int(h.sum())
    residual = latent - h
    if gap > 0:
        movable = np.flatnonzero((h != 5) & (h < 10))
        pick = movable[np.argsort(-residual[movable], kind="stable")[:gap]]
        h[pick] += 1
    elif gap < 0:
        movable = np.flatnonzero((h != 6) & (h > 0))
        pick = movable[np.argsort(residual[movable], kind="stable")[:-gap]]
        h[pick] -= 1
    assert int((h >= 6).sum()) == target_happy and round(h.mean(), 2) == 6.94
    return h


def make_wave(wave: int, seed: int = SURVEY_SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate one wave: ``(respondents, mailed sample)``.

    Returns
    -------
    respondents : DataFrame
        One row per respondent (the published-style survey file).
    mailed : DataFrame
        One row per person the questionnaire was mailed to, with ``responded`` 0/1.
    """
    if wave not in WAVES:
        raise ValueError(f"No wave {wave}; waves are {sorted(WAVES)}.")
    spec = WAVES[wave]
    rng = np.random.default_rng([seed, wave])
    mailed = _mailed_sample(rng, make_register(), spec["mailed_per_district"])
    age = mailed["age_group"].map(_AGE_INDEX).to_numpy()
    periphery = mailed["district_code"].map(lambda c: BY_CODE[c].area_type == "periphery").to_numpy()

    household = _draw(rng, _HOUSEHOLD_BY_AGE[age], HOUSEHOLDS)
    occupation = _draw(rng, _OCCUPATION_BY_AGE[age], OCCUPATIONS)
    health = _draw(rng, _HEALTH_BY_AGE[age], np.arange(1, 6)).astype(int)

    logit = (_RESPONSE_AGE[age] + _RESPONSE_HEALTH[health - 1]
             + _RESPONSE_OLD_PERIPHERY * (periphery & (age >= 5)))
    responded = _choose_exactly(rng, logit, spec["respondents"])
    mailed["responded"] = responded.astype(int)

    resp = mailed[responded].copy()
    r_age, r_health = age[responded], health[responded]
    resp["household"] = household[responded]
    resp["occupation"] = occupation[responded]
    resp["self_rated_health"] = r_health
    female = (resp["sex"] == "female").to_numpy()

    latent = (_AGE_EFFECT[r_age] + _HEALTH_EFFECT[r_health - 1]
              + resp["district_code"].map(_DISTRICT_EFFECT).to_numpy()
              + resp["household"].map(_HOUSEHOLD_EFFECT).to_numpy()
              + resp["occupation"].map(_OCCUPATION_EFFECT).to_numpy()
              + 0.15 * female
              + rng.normal(0.0, _WAVE_SD, len(resp))
              # a minority going through hard times: a longer lower tail
              + (rng.random(len(resp)) < 0.08) * rng.normal(-2.5, 1.2, len(resp)))
    latent += spec["mean"] - latent.mean()
    happiness = np.clip(np.rint(latent), 0, 10).astype(int)
    # Heaping at the midpoint, as in the national survey: some undecided answers say 5.
    undecided = (latent > 3.5) & (latent < 6.5) & (rng.random(len(resp)) < 0.22)
    happiness[undecided] = 5
    if wave == 2019:
        happiness = _fix_to_published(happiness, latent)
    resp["happiness"] = happiness

    _add_weigh_options(rng, resp, r_age, wave)
    ids = [f"H{wave}-{i:04d}" for i in range(1, len(resp) + 1)]
    resp.insert(0, "respondent_id", ids)
    resp.insert(1, "wave", wave)
    mailed.loc[responded, "respondent_id"] = ids
    mailed.insert(0, "sample_id", [f"M{wave}-{i:04d}" for i in range(1, len(mailed) + 1)])
    mailed.insert(1, "wave", wave)

    columns = ["respondent_id", "wave", "district", "district_code", "age_group", "sex",
               "household", "occupation", "self_rated_health", "happiness",
               *[name for name, _, _ in WEIGH_OPTIONS], "design_weight"]
    mailed = mailed[["sample_id", "wave", "district", "district_code", "age_group", "sex",
                     "design_weight", "responded", "respondent_id"]]
    return resp[columns].reset_index(drop=True), mailed


def _add_weigh_options(rng, resp: pd.DataFrame, age: np.ndarray, wave: int) -> None:
    """The multiple-answer question, with exact 2019 counts and plausible structure."""
    household = resp["household"].to_numpy()
    occupation = resp["occupation"].to_numpy()
    working = np.isin(occupation, ["employee", "self_employed", "part_time"])
    family_home = np.isin(household, ["couple_with_children", "single_parent", "three_generation"])
    happy = resp["happiness"].to_numpy() if "happiness" in resp else np.zeros(len(resp))
    structure = {
        "weigh_health": 0.35 * age + 0.4 * (resp["self_rated_health"].to_numpy() >= 4),
        "weigh_family": 1.0 * family_home + 0.5 * (household == "couple") - 0.9 * (household == "single"),
        "weigh_finances": 0.6 * np.isin(age, [1, 2, 3]) + 0.6 * (occupation == "part_time")
        + 0.8 * (household == "single_parent") - 0.12 * (happy - 7),
        "weigh_leeway": 0.5 * np.isin(age, [1, 2, 3]) + 0.4 * (occupation == "employee"),
        "weigh_free_time": 0.6 * (age == 0) + 0.5 * (occupation == "student"),
        "weigh_employment": 0.9 * working - 0.6 * (age >= 5),
        "weigh_friends": 0.8 * (age == 0) + 0.6 * (occupation == "student"),
        "weigh_purpose": 0.6 * (age >= 4),
        "weigh_work_fulfilment": 1.1 * working,
        "weigh_community": 0.5 * (age >= 4) + 0.4 * (resp["district_code"].isin(["tsukuba", "kukizaki"])),
        "weigh_workplace": 1.2 * (occupation == "employee"),
    }
    n = len(resp)
    for name, _, count_2019 in WEIGH_OPTIONS:
        share = count_2019 / PUBLISHED_2019["respondents"]
        if wave != 2019:
            share *= {2015: 0.97, 2017: 0.99}[wave] * rng.uniform(0.96, 1.04)
        k = count_2019 if wave == 2019 else int(round(share * n))
        resp[name] = _choose_exactly(rng, structure[name], k).astype(int)


def write_survey(folder: Path, seed: int = SURVEY_SEED) -> None:
    """Write the three waves and the 2019 mailed sample into ``folder``."""
    folder = Path(folder)
    for wave in sorted(WAVES):
        respondents, mailed = make_wave(wave, seed)
        respondents.to_csv(folder / f"happiness_{wave}.csv", index=False, lineterminator="\n")
        if wave == 2019:
            mailed.to_csv(folder / "happiness_2019_mailed.csv", index=False, lineterminator="\n")
