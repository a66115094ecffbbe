"""Equity: inequality indices, group disparity of eligibility rules, and who can reach a place.

The city's ethics principle of *justice* (fair to all regardless of age, sex or income; gaps
must not widen) needs numbers that a committee can read:

- **how unequal** -- :func:`gini`, :func:`theil` and :func:`atkinson` (all weighted), or the
  three together with :func:`inequality_indices`;
- **who a rule leaves out** -- :func:`selection_rates` per group, the
  :func:`demographic_parity_difference` and :func:`demographic_parity_ratio` (the same
  definitions as fairlearn's), and :func:`compare_rules` to set several eligibility rules
  side by side;
- **who can get there** -- :func:`route_access` counts, zone by zone, the places (or people)
  that can reach a set of destinations on the accessible sidewalk network of module 04
  (:mod:`sscity.mobility.routing`) for each traveller profile, and :func:`access_inequality`
  turns that into indices across zones. :func:`network_zones` cuts the synthetic sidewalk
  network into six blocks between its five roads (all of it lies in one district, Sakura;
  :func:`zones_from_polygons` assigns nodes to districts or any other polygons).

Conventions
-----------
- Values for the indices must be finite and not negative, with a positive total; weights
  (e.g. people per district) must be finite and not negative. A weight of 0 leaves a value out.
- The indices are *population* versions (no small-sample correction): Gini
  ``Σ_i Σ_j w_i w_j |x_i − x_j| / (2 W² μ)``; Theil ``T = Σ (w_i/W) (x_i/μ) ln(x_i/μ)``
  (0 ln 0 = 0); Atkinson ``1 − M_{1−ε} / μ`` with ``M_p`` the weighted power mean
  (the geometric mean when ε = 1). They match R's ``ineq`` package (``Gini``, ``Theil``,
  ``Atkinson``) and are 0 for perfect equality.
- The *four-fifths rule* flags a group whose selection rate is under 80 % of the highest
  group's (US Uniform Guidelines on Employee Selection Procedures, 29 CFR 1607.4(D)) --
  a screening heuristic, not a legal test here.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "FOUR_FIFTHS",
    "access_inequality",
    "atkinson",
    "compare_rules",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "gini",
    "inequality_indices",
    "network_zones",
    "route_access",
    "selection_rates",
    "theil",
    "zones_from_polygons",
]

FOUR_FIFTHS = 0.8


# --------------------------------------------------------------------------- validation


def _vector(values, name: str) -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        raise TypeError(
            f"{name} must be one column (a Series, list or 1-D array), not a DataFrame. / "
            f"{name} は 1 列（Series・リスト・1 次元配列）で渡してください。"
        )
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must hold numbers. / {name} には数を入れてください。"
        ) from None
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be one-dimensional; got shape {array.shape}. / "
            f"{name} は 1 次元にしてください（形 {array.shape}）。"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty. / {name} が空です。")
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name} has missing or infinite values; drop or fill them first. / "
            f"{name} に欠損値か無限大があります。除くか補ってください。"
        )
    return array


def _income_and_weights(values, weights) -> tuple[np.ndarray, np.ndarray]:
    """Values and weights for an index: non-negative, positive total, zero weights dropped."""
    x = _vector(values, "values")
    if weights is None:
        w = np.ones_like(x)
    else:
        w = _vector(weights, "weights")
        if w.size != x.size:
            raise ValueError(
                f"weights has {w.size} values but values has {x.size}; give one weight per value. / "
                f"weights は {w.size} 個、values は {x.size} 個です。値ごとに重みを 1 つ与えてください。"
            )
        if (w < 0).any():
            raise ValueError(
                f"weights must not be negative; the smallest is {w.min():g}. / "
                "weights に負の値は使えません。"
            )
    if (x < 0).any():
        raise ValueError(
            f"values must not be negative (the smallest is {x.min():g}); these indices compare "
            "shares of a total such as income or access. / values に負の値は使えません"
            "（所得やアクセスのような「総量の分け前」を比べる指標です）。"
        )
    keep = w > 0
    x, w = x[keep], w[keep]
    if x.size == 0 or float(np.sum(w * x)) <= 0:
        raise ValueError(
            "values (with their weights) add up to 0; an index of inequality needs a positive "
            "total. / 値（重み付き）の合計が 0 です。不平等の指標には正の合計が必要です。"
        )
    return x, w


def _mean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x) / np.sum(w))


# --------------------------------------------------------------------------- indices


def gini(values, weights=None) -> float:
    """Gini index: half the mean absolute difference between two people, over the mean.

    Parameters
    ----------
    values : array-like
        Non-negative amounts (income, access share, ...).
    weights : array-like, optional
        People each value stands for; ``None`` means 1 each. Integer weights give the same
        result as repeating each value that many times.

    Returns
    -------
    float
        0 (all equal) to ``1 - 1/n`` (one person has everything).

    Examples
    --------
    >>> round(gini([2, 4, 6, 8, 30]), 5)
    0.48
    """
    x, w = _income_and_weights(values, weights)
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    total = w.sum()
    cumulative = np.cumsum(w)
    # Σ_i Σ_j w_i w_j |x_i - x_j| = 2 Σ_i w_i x_i (weight below i - weight above i) once sorted.
    spread = np.sum(w * x * (2 * cumulative - w - total))
    return float(spread / (total**2 * _mean(x, w)))


def theil(values, weights=None) -> float:
    """Theil's T index (GE(1)): ``Σ (w_i/W) (x_i/μ) ln(x_i/μ)``.

    Parameters
    ----------
    values, weights
        As in :func:`gini`; zeros are allowed (``0 ln 0 = 0``).

    Returns
    -------
    float
        0 (all equal) to ``ln n`` (one person has everything).

    Examples
    --------
    >>> round(theil([2, 4, 6, 8, 30]), 6)
    0.424485
    """
    x, w = _income_and_weights(values, weights)
    ratio = x / _mean(x, w)
    terms = np.where(ratio > 0, ratio * np.log(np.where(ratio > 0, ratio, 1.0)), 0.0)
    return float(np.sum(w * terms) / np.sum(w))


def atkinson(values, epsilon: float = 0.5, weights=None) -> float:
    """Atkinson index with inequality aversion ``epsilon``: ``1 - M_{1-ε}(x) / mean(x)``.

    ``M_p`` is the weighted power mean (the geometric mean for ``epsilon = 1``): the income
    that, shared equally, would be valued as much as the actual distribution. Larger
    ``epsilon`` weighs the bottom more.

    Parameters
    ----------
    values, weights
        As in :func:`gini`.
    epsilon : float, default 0.5
        Inequality aversion, ``>= 0``. With ``epsilon >= 1`` every value must be positive
        (the power mean of a zero is 0 there, and the index would be 1 whatever the rest).

    Examples
    --------
    >>> round(atkinson([2, 4, 6, 8, 30], 0.5), 5)
    0.19692
    """
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        eps = math.nan
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(
            f"epsilon (inequality aversion) must be a number >= 0 such as 0.5, 1 or 2, not "
            f"{epsilon!r}. / epsilon（不平等回避度）は 0 以上の数（0.5, 1, 2 など）にしてください。"
        )
    x, w = _income_and_weights(values, weights)
    mean = _mean(x, w)
    share = w / w.sum()
    if eps >= 1 and (x == 0).any():
        raise ValueError(
            f"With epsilon = {eps:g} >= 1 the Atkinson index needs every value > 0 "
            f"({int((x == 0).sum())} are 0); use epsilon < 1, or say the index is 1. / "
            f"epsilon = {eps:g}（1 以上）では全ての値が正である必要があります"
            f"（0 が {int((x == 0).sum())} 個）。epsilon < 1 を使ってください。"
        )
    if eps == 1:
        equivalent = math.exp(float(np.sum(share * np.log(x))))
    else:
        power = 1.0 - eps
        equivalent = float(np.sum(share * x**power)) ** (1.0 / power)
    return float(1.0 - equivalent / mean)


def inequality_indices(values, weights=None, epsilons: Sequence[float] = (0.5, 1.0, 2.0)) -> pd.Series:
    """Gini, Theil and Atkinson at each ``epsilons`` in one Series (Atkinson left out where undefined)."""
    out = {"gini": gini(values, weights), "theil": theil(values, weights)}
    for eps in epsilons:
        try:
            out[f"atkinson_{eps:g}"] = atkinson(values, eps, weights)
        except ValueError:
            out[f"atkinson_{eps:g}"] = math.nan
    return pd.Series(out, name="inequality")


# --------------------------------------------------------------------------- eligibility


def _labels(groups, n: int) -> pd.Series:
    """One label per row; a DataFrame of several columns gives their combinations."""
    if isinstance(groups, pd.DataFrame):
        if groups.shape[1] == 0:
            raise ValueError("groups has no columns. / groups に列がありません。")
        frame = groups.reset_index(drop=True)
        labels = frame.astype(str).agg(", ".join, axis=1) if frame.shape[1] > 1 else frame.iloc[:, 0]
        missing = frame.isna().any(axis=1)
    else:
        labels = pd.Series(np.asarray(groups, dtype=object))
        missing = labels.isna()
    if len(labels) != n:
        raise ValueError(
            f"groups has {len(labels)} rows but eligible has {n}; give one group per row. / "
            f"groups は {len(labels)} 行、eligible は {n} 行です。行ごとにグループを与えてください。"
        )
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} rows have no group (NaN); fill them in or drop them. / "
            f"グループが欠けている行が {int(missing.sum())} 行あります。"
        )
    return labels


def _indicator(eligible) -> np.ndarray:
    if isinstance(eligible, pd.Series) and isinstance(eligible.dtype, pd.BooleanDtype):
        if eligible.isna().any():
            raise ValueError(
                "eligible has missing values; decide them (True or False) first. / "
                "eligible に欠損があります。True か False に決めてください。"
            )
        eligible = eligible.astype(bool)
    x = _vector(eligible, "eligible")
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError(
            "eligible must be True/False (or 1/0), one per person. / "
            "eligible は 1 人ごとの True/False（または 1/0）にしてください。"
        )
    return x


def selection_rates(eligible, groups, weights=None) -> pd.DataFrame:
    """Share of each group that a rule selects (finds eligible), weighted if weights are given.

    Parameters
    ----------
    eligible : array-like of bool
        The rule's decision for each person.
    groups : array-like or DataFrame
        The group of each person (e.g. age group); a DataFrame of several columns makes
        intersectional groups ("70+, female").
    weights : array-like, optional
        Survey weights (people each row stands for).

    Returns
    -------
    DataFrame
        Indexed by group (sorted): ``n`` (rows), ``weight`` (people represented),
        ``selected`` (weighted), ``rate``, ``ratio_to_highest`` and ``four_fifths``
        (``rate >= 0.8 × highest``).
    """
    x = _indicator(eligible)
    labels = _labels(groups, x.size)
    w = np.ones_like(x) if weights is None else _vector(weights, "weights")
    if w.size != x.size:
        raise ValueError(
            f"weights has {w.size} values for {x.size} people. / weights の数が人数と合いません。"
        )
    if (w < 0).any():
        raise ValueError("weights must not be negative. / weights に負の値は使えません。")
    frame = pd.DataFrame({"group": labels.to_numpy(), "x": x, "w": w})
    table = frame.groupby("group", sort=True).apply(
        lambda g: pd.Series(
            {"n": len(g), "weight": g["w"].sum(), "selected": float(np.sum(g["w"] * g["x"]))}
        ),
        include_groups=False,
    )
    if (table["weight"] <= 0).any():
        empty = list(table.index[table["weight"] <= 0])
        raise ValueError(
            f"Groups {empty} have no positive weight, so no rate. / "
            f"グループ {empty} の重みが 0 のため、割合を計算できません。"
        )
    table["n"] = table["n"].astype(int)
    table["rate"] = table["selected"] / table["weight"]
    highest = table["rate"].max()
    table["ratio_to_highest"] = table["rate"] / highest if highest > 0 else math.nan
    table["four_fifths"] = table["rate"] >= FOUR_FIFTHS * highest
    table.index.name = groups.name if isinstance(groups, pd.Series) and groups.name else "group"
    return table


def demographic_parity_difference(eligible, groups, weights=None) -> float:
    """Highest minus lowest selection rate across groups (0 = parity).

    The same quantity as ``fairlearn.metrics.demographic_parity_difference`` (method
    ``"between_groups"``, ``sample_weight`` = ``weights``); a rule decides eligibility, so
    there are no "true" labels.
    """
    rates = selection_rates(eligible, groups, weights)["rate"]
    return float(rates.max() - rates.min())


def demographic_parity_ratio(eligible, groups, weights=None) -> float:
    """Lowest over highest selection rate across groups (1 = parity; under 0.8 fails four-fifths).

    The same quantity as ``fairlearn.metrics.demographic_parity_ratio``; ``nan`` when no
    group is selected at all.
    """
    rates = selection_rates(eligible, groups, weights)["rate"]
    return float(rates.min() / rates.max()) if rates.max() > 0 else math.nan


def compare_rules(data: pd.DataFrame, rules: Mapping[str, str | Callable], by, weights=None) -> pd.DataFrame:
    """Several eligibility rules side by side: who each selects and how unequally.

    Parameters
    ----------
    data : DataFrame
        One row per person.
    rules : mapping of name -> rule
        A rule is a boolean column name, a ``DataFrame.eval`` expression
        (``"age >= 65 and income < 3"``) or a function of ``data`` returning booleans.
    by : str or list of str
        The group column(s).
    weights : None, str or array-like
        Survey weights: a column name or one per row.

    Returns
    -------
    DataFrame
        One row per rule: ``selected_share`` (overall), ``parity_difference``,
        ``parity_ratio``, ``lowest_group``, ``highest_group``, ``four_fifths_ok``.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}. / "
                        "data には DataFrame を渡してください。")
    columns = [by] if isinstance(by, str) else list(by)
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(f"Group column(s) {missing} are not in the data. / 列 {missing} がありません。")
    if isinstance(weights, str):
        weights = data[weights]
    w = None if weights is None else np.asarray(weights, dtype=float)
    rows = []
    for name, rule in rules.items():
        if callable(rule):
            eligible = rule(data)
        elif isinstance(rule, str) and rule in data.columns:
            eligible = data[rule]
        elif isinstance(rule, str):
            try:
                eligible = data.eval(rule)
            except Exception as error:  # pandas raises many kinds for a bad expression
                raise ValueError(
                    f"Rule {name!r}: cannot evaluate {rule!r} ({error}). / "
                    f"ルール {name!r} の式 {rule!r} を評価できません。"
                ) from None
        else:
            raise TypeError(
                f"Rule {name!r} must be a column name, an expression or a function. / "
                f"ルール {name!r} は列名・式・関数のいずれかにしてください。"
            )
        table = selection_rates(eligible, data[columns] if len(columns) > 1 else data[columns[0]], w)
        overall = float(np.average(_indicator(eligible), weights=w))
        rows.append(
            {
                "rule": name,
                "selected_share": overall,
                "parity_difference": float(table["rate"].max() - table["rate"].min()),
                "parity_ratio": float(table["rate"].min() / table["rate"].max())
                if table["rate"].max() > 0 else math.nan,
                "lowest_group": table["rate"].idxmin(),
                "highest_group": table["rate"].idxmax(),
                "four_fifths_ok": bool(table["four_fifths"].all()),
            }
        )
    return pd.DataFrame(rows).set_index("rule")


# --------------------------------------------------------------------------- spatial access


def network_zones(graph, boundaries: Sequence[float] | None = None,
                  labels: Sequence[str] | None = None) -> pd.Series:
    """Cut a sidewalk network into zones by latitude: the zone of each node.

    Parameters
    ----------
    graph : networkx.Graph
        From :func:`sscity.mobility.routing.load_sidewalks` (nodes carry ``lat``).
    boundaries : sequence of float, optional
        Latitudes where one zone ends and the next begins (south to north). Default: the
        latitudes of the nodes named "deck bridge over road …", i.e. the five roads that cut
        the synthetic network into six blocks from the station (block 1) to the campus
        (block 6). A node exactly on a boundary belongs to the zone north of it.
    labels : sequence of str, optional
        One per zone; default ``"block 1"`` … .

    Returns
    -------
    Series
        Indexed by node id, named ``zone``: an ordered categorical.
    """
    if boundaries is None:
        boundaries = [d["lat"] for _, d in graph.nodes(data=True)
                      if str(d.get("name", "")).startswith("deck bridge over road")]
        if not boundaries:
            raise ValueError(
                "This network has no 'deck bridge over road' nodes; give boundaries= "
                "(latitudes). / この歩行者ネットワークには道路の橋のノードがありません。"
                "boundaries=（緯度）を指定してください。"
            )
    cuts = sorted(float(b) for b in boundaries)
    n_zones = len(cuts) + 1
    if labels is None:
        labels = [f"block {i}" for i in range(1, n_zones + 1)]
    labels = list(labels)
    if len(labels) != n_zones:
        raise ValueError(
            f"{len(cuts)} boundaries make {n_zones} zones, but {len(labels)} labels were given. / "
            f"境界 {len(cuts)} 本で {n_zones} 区域になりますが、ラベルは {len(labels)} 個です。"
        )
    zone = {n: labels[bisect.bisect_right(cuts, d["lat"])] for n, d in graph.nodes(data=True)}
    series = pd.Series(zone, name="zone")
    series.index.name = "node"
    return series.astype(pd.CategoricalDtype(labels, ordered=True))


def zones_from_polygons(graph, polygons=None, column: str = "district_code") -> pd.Series:
    """The zone of each node: the ``column`` of the polygon that contains it (e.g. a district).

    Parameters
    ----------
    graph : networkx.Graph
        Nodes carry ``lon`` and ``lat`` (EPSG:4326).
    polygons : GeoDataFrame, optional
        Zones in EPSG:4326; default the six (schematic) districts of
        :func:`sscity.data.loaders.load_districts`. The whole synthetic sidewalk network lies
        in one of them (Sakura), which is why :func:`network_zones` cuts it into blocks.
    column : str, default "district_code"
        The column naming each zone.

    Returns
    -------
    Series
        Indexed by node id, named ``zone``; NaN for a node outside every polygon.
    """
    from shapely.geometry import Point

    if polygons is None:
        from sscity.data.loaders import load_districts

        polygons = load_districts()
    if column not in polygons.columns:
        raise KeyError(
            f"The polygons have no column {column!r}; the columns are {list(polygons.columns)}. / "
            f"ポリゴンに列 {column!r} がありません。"
        )
    shapes = list(zip(polygons[column], polygons.geometry, strict=True))
    zone = {}
    for node, d in graph.nodes(data=True):
        point = Point(d["lon"], d["lat"])
        zone[node] = next((label for label, shape in shapes if shape.covers(point)), math.nan)
    series = pd.Series(zone, name="zone", dtype=object)
    series.index.name = "node"
    return series


def _destinations(graph, destinations) -> list[str]:
    from sscity.mobility.routing import find_node

    if isinstance(destinations, str):
        destinations = [destinations]
    nodes = []
    for d in destinations:
        nodes.append(d if d in graph else find_node(graph, d))
    if not nodes:
        raise ValueError("Give at least one destination. / 目的地を 1 つ以上指定してください。")
    return nodes


def route_access(graph, destinations, zones: pd.Series, *,
                 profiles: Sequence = ("walking", "manual_wheelchair"),
                 weights: pd.Series | None = None, max_length_m: float | None = None) -> pd.DataFrame:
    """Zone by zone, the share of places (or people) that can reach a destination.

    A place *reaches* the destinations if the profile has a route to the nearest one on the
    edges it can use (:func:`sscity.mobility.routing.accessible_subgraph`), no longer than
    ``max_length_m`` if given.

    Parameters
    ----------
    graph : networkx.Graph
        The sidewalk network (:func:`sscity.mobility.routing.load_sidewalks`).
    destinations : node id, name, or a list of them
        E.g. ``["Tsukuba Station (TX) concourse", "Tsukuba Center bus terminal"]``.
    zones : Series
        Zone of each origin, indexed by node id (e.g. from :func:`network_zones`). The
        origins are the nodes in this index.
    profiles : sequence of str or AccessProfile
        Traveller profiles of :mod:`sscity.mobility.routing`.
    weights : Series, optional
        People at each origin node (indexed like ``zones``); default 1 per place.
    max_length_m : float, optional
        Longest acceptable route (m); ``None`` means any length.

    Returns
    -------
    DataFrame
        One row per (zone, profile): ``zone``, ``profile``, ``places``, ``people``,
        ``reached`` (people who can reach), ``share`` (reached / people) and
        ``mean_route_m`` (mean length over those reached, weighted).
    """
    import networkx as nx

    from sscity.mobility.routing import PROFILES, AccessProfile, accessible_subgraph

    if not isinstance(zones, pd.Series):
        raise TypeError(
            "zones must be a Series of zone labels indexed by node id (see network_zones). / "
            "zones はノード ID を索引とする区域ラベルの Series にしてください（network_zones 参照）。"
        )
    unknown = [n for n in zones.index if n not in graph]
    if unknown:
        raise KeyError(
            f"{len(unknown)} origins are not nodes of the network (first {unknown[:3]}). / "
            f"起点 {len(unknown)} 個がネットワークのノードではありません。"
        )
    if zones.isna().any():
        raise ValueError("Some origins have no zone (NaN). / 区域が欠けている起点があります。")
    if weights is None:
        people = pd.Series(1.0, index=zones.index)
    else:
        people = pd.Series(weights, dtype=float).reindex(zones.index)
        if people.isna().any() or (people < 0).any():
            raise ValueError(
                "weights needs a non-negative number for every origin in zones. / "
                "weights には zones の全起点について 0 以上の数が必要です。"
            )
    if max_length_m is not None and not (float(max_length_m) > 0):
        raise ValueError(
            "max_length_m must be positive (metres). / max_length_m は正の数（m）にしてください。"
        )
    targets = _destinations(graph, destinations)
    zone_order = list(zones.cat.categories) if isinstance(zones.dtype, pd.CategoricalDtype) \
        else sorted(zones.unique())
    rows = []
    for profile in profiles:
        # accessible_subgraph checks the profile (and names the valid ones if it is unknown).
        view = accessible_subgraph(graph, profile)
        name = profile.name if isinstance(profile, AccessProfile) else PROFILES[profile].name
        distance = nx.multi_source_dijkstra_path_length(
            view, targets, cutoff=max_length_m, weight="length_m"
        )
        length = pd.Series({n: distance.get(n, math.nan) for n in zones.index}, dtype=float)
        for zone in zone_order:
            members = zones.index[zones.to_numpy() == zone]
            w = people[members]
            reached = length[members].notna()
            total = float(w.sum())
            got = float(w[reached].sum())
            rows.append(
                {
                    "zone": zone,
                    "profile": name,
                    "places": int(len(members)),
                    "people": total,
                    "reached": got,
                    "share": got / total if total > 0 else math.nan,
                    "mean_route_m": float(np.average(length[members][reached], weights=w[reached]))
                    if got > 0 else math.nan,
                }
            )
    return pd.DataFrame(rows)


def access_inequality(access: pd.DataFrame, epsilon: float = 0.5) -> pd.DataFrame:
    """Inequality of access across zones, per profile, from :func:`route_access`.

    Each zone's ``share`` counts once per person (weighted by ``people``), so the indices
    describe residents, not map areas.

    Returns
    -------
    DataFrame
        Indexed by profile: ``overall_share``, ``lowest_zone``, ``lowest_share``,
        ``min_max_ratio``, ``gini``, ``theil`` and ``atkinson`` (at ``epsilon``; NaN where
        undefined, i.e. nobody reaches anything).
    """
    needed = {"zone", "profile", "people", "reached", "share"}
    if not isinstance(access, pd.DataFrame) or not needed <= set(access.columns):
        raise TypeError(
            "access must be the table from route_access. / access には route_access の表を渡してください。"
        )
    rows = []
    for profile, part in access.groupby("profile", sort=False):
        part = part[part["people"] > 0]
        shares, people = part["share"].to_numpy(float), part["people"].to_numpy(float)
        row = {
            "profile": profile,
            "overall_share": float(part["reached"].sum() / part["people"].sum()),
            "lowest_zone": part.loc[part["share"].idxmin(), "zone"],
            "lowest_share": float(shares.min()),
            "min_max_ratio": float(shares.min() / shares.max()) if shares.max() > 0 else math.nan,
        }
        for key, index, args in (("gini", gini, ()), ("theil", theil, ()),
                                 ("atkinson", atkinson, (epsilon,))):
            try:
                row[key] = index(shares, *args, weights=people)
            except ValueError:  # nobody reaches anything: no positive total
                row[key] = math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("profile")
