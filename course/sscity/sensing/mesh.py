"""JIS X 0410 grid-square (地域メッシュ) codes, and counts per cell with small cells suppressed.

The standard grid squares of Japan are defined in JIS X 0410 *Grid Square Code* (地域メッシュコード,
1976, amended 2002) after the Administrative Management Agency's notice No. 143 of 1973 (昭和48年
行政管理庁告示第143号, 統計に用いる標準地域メッシュ及び標準地域メッシュ・コード). The Statistics Bureau of
Japan (総務省統計局, 地域メッシュ統計, ch. 1 §4) publishes the same table:

=====  ================================  ============  =============  =======  ======
level  name                              latitude      longitude      side     digits
=====  ================================  ============  =============  =======  ======
1      first (第1次地域区画)              40'           1°             ~80 km   4
2      second (第2次地域区画)             5'            7'30"          ~10 km   6
3      third, standard (基準地域メッシュ)  30"           45"            ~1 km    8
4      half (2分の1地域メッシュ)           15"           22.5"          ~500 m   9
5      quarter (4分の1地域メッシュ)        7.5"          11.25"         ~250 m   10
6      eighth (8分の1地域メッシュ)         3.75"         5.625"         ~125 m   11
=====  ================================  ============  =============  =======  ======

How a code is built: the first two digits are the south edge's latitude x 1.5 (40' bands), the
next two the west edge's longitude - 100; levels 2 and 3 add the row (from the south) and the
column (from the west) inside the parent (0-7, then 0-9); levels 4-6 add one digit for the
quarter of the parent: 1 south-west, 2 south-east, 3 north-west, 4 north-east.

Exact arithmetic. Every boundary of every level is a whole number of level-6 cells, and a
level-6 cell is exactly 1/960 degree of latitude and 1/640 degree of longitude. So a position is
turned *once* into whole level-6 units (``floor(lat * 960)``, ``floor((lon - 100) * 640)``) and
every digit comes from integer division. Chained floating-point remainders (``lat % (2/3) %
(1/12) ...``) instead pile up rounding errors that can drop a point on a boundary into the wrong
cell.

Points on a boundary. The standard names each cell by its south-west corner and does not say
which cell owns a shared edge; the usual reading (the Statistics Bureau's worked formula,
``jismesh``) takes the floor, so a point exactly on an edge belongs to the cell to its north
and/or east: each cell holds its south and west edges and not its north and east ones. A
decimal such as 36.1 has no exact binary value, so ``36.1 * 960`` may come out as
34655.99999999999; a position within 1e-9 of a level-6 unit (about 0.1 micrometre) of a line
is taken as on the line, far below any receiver's precision.

Coverage. Japan's mesh codes are defined for latitudes 20-46° N and longitudes 122-154° E
(first-level codes 30xx-68xx and xx22-xx53): from Okinotorishima to Etorofu, from Yonaguni to
Minamitorishima. Positions outside are refused rather than given a code that means another
country's grid.

Example
-------
>>> to_meshcode(36.0828, 140.1114)          # Tsukuba station, level 3 (1 km)
'54400098'
>>> meshcode_bounds("5339")                  # (south, west, north, east) in degrees
(35.333333333333336, 139.0, 36.0, 140.0)
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

__all__ = [
    "LEVELS",
    "k_suppressed_counts",
    "mesh_polygon",
    "meshcode_bounds",
    "meshcode_center",
    "meshcode_level",
    "parent_meshcode",
    "to_meshcode",
]

#: level -> (name, approximate side, number of digits of the code)
LEVELS = {
    1: ("first (第1次地域区画)", "80 km", 4),
    2: ("second (第2次地域区画)", "10 km", 6),
    3: ("third / standard (基準地域メッシュ)", "1 km", 8),
    4: ("half (2分の1地域メッシュ)", "500 m", 9),
    5: ("quarter (4分の1地域メッシュ)", "250 m", 10),
    6: ("eighth (8分の1地域メッシュ)", "125 m", 11),
}
_LENGTH_TO_LEVEL = {digits: level for level, (_, _, digits) in LEVELS.items()}

# A level-6 cell is 3.75" x 5.625" = 1/960 degree of latitude x 1/640 degree of longitude.
_LAT_UNITS_PER_DEG = 960
_LON_UNITS_PER_DEG = 640
_LON_ORIGIN_DEG = 100
# Size of each level's cell in level-6 units (the same number for latitude and longitude,
# because every level splits both directions alike): 640, 80, 8, 4, 2, 1.
_UNITS = {1: 640, 2: 80, 3: 8, 4: 4, 5: 2, 6: 1}
# Japan's coverage (see the module docstring); half-open like the cells themselves.
LAT_RANGE_DEG = (20.0, 46.0)
LON_RANGE_DEG = (122.0, 154.0)
# How close (in level-6 units) to a grid line a position is taken as on it: 1e-9 units is
# about 0.1 micrometre, yet far above the rounding error of lat * 960 (~1e-11 units).
_SNAP_UNITS = 1e-9


# --------------------------------------------------------------------------------------------
# Validation helpers


def _check_level(level) -> int:
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or int(level) not in LEVELS:
        raise ValueError(
            f"level must be one of 1 (80 km), 2 (10 km), 3 (1 km), 4 (500 m), 5 (250 m), 6 (125 m); "
            f"got {level!r}. / level は 1(80 km)、2(10 km)、3(1 km)、4(500 m)、5(250 m)、6(125 m)"
            f" のいずれかにしてください(指定値: {level!r})。"
        )
    return int(level)


def _as_float_array(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be numbers in decimal degrees (e.g. 36.0828), not {type(values).__name__}. "
            f"/ {name} は10進法の度(例: 36.0828)の数値にしてください。"
        ) from None
    if np.isnan(array).any():
        n_missing = int(np.isnan(array).sum())
        raise ValueError(
            f"{name} has {n_missing} missing value(s) (NaN): drop or fill them first, e.g. "
            f"frame.dropna(subset=[...]). / {name} に欠損値(NaN)が {n_missing} 個あります。先に"
            f"frame.dropna(subset=[...]) などで除いてください。"
        )
    return array


def _check_range(array: np.ndarray, name: str, low: float, high: float) -> None:
    outside = ~((array >= low) & (array < high))
    if outside.any():
        first = float(array[outside].flat[0])
        hint = (
            " Did you swap latitude and longitude? / 緯度と経度が入れ替わっていませんか?"
            if name == "lat" and 122 <= first < 154
            else ""
        )
        raise ValueError(
            f"{name} = {first} is outside Japan's mesh coverage [{low}, {high}) degrees "
            f"({int(outside.sum())} value(s) outside); mesh codes are defined only for "
            f"lat 20-46° N, lon 122-154° E. / {name} = {first} は日本の地域メッシュの範囲"
            f" [{low}, {high}) 度の外です(範囲外 {int(outside.sum())} 個)。地域メッシュは北緯20〜46度、"
            f"東経122〜154度でのみ定義されます。{hint}"
        )


def _floor_units(degrees: np.ndarray, units_per_degree: int, origin: int) -> np.ndarray:
    """Whole level-6 units south/west of ``degrees``, snapping values within 1e-9 of a line."""
    scaled = (degrees - origin) * units_per_degree
    nearest = np.rint(scaled)
    on_line = np.abs(scaled - nearest) <= _SNAP_UNITS
    return np.where(on_line, nearest, np.floor(scaled)).astype(np.int64)


def _normalise_code(code) -> str:
    if isinstance(code, bool) or not isinstance(code, (str, numbers.Integral)):
        raise TypeError(
            f"A mesh code must be a string or an integer such as '54400098', not "
            f"{type(code).__name__}. / メッシュコードは '54400098' のような文字列か整数にしてください"
            f"({type(code).__name__} は使えません)。"
        )
    text = str(code).strip().replace("-", "")
    lengths = ", ".join(str(n) for n in _LENGTH_TO_LEVEL)
    if not text.isascii() or not text.isdigit() or len(text) not in _LENGTH_TO_LEVEL:
        raise ValueError(
            f"{code!r} is not a JIS X 0410 mesh code: it must be {lengths} digits (levels 1-6). / "
            f"{code!r} は JIS X 0410 の地域メッシュコードではありません。{lengths} 桁の数字"
            f"(1〜6次)にしてください。"
        )
    ab, cd = int(text[0:2]), int(text[2:4])
    if not (30 <= ab <= 68 and 22 <= cd <= 53):
        raise ValueError(
            f"{code!r}: first-level code {text[:4]} is outside Japan (30xx-68xx, xx22-xx53). / "
            f"{code!r}: 1次メッシュ {text[:4]} は日本の範囲(30xx〜68xx、xx22〜xx53)の外です。"
        )
    if len(text) >= 6 and (text[4] > "7" or text[5] > "7"):
        raise ValueError(
            f"{code!r}: digits 5-6 (second level) must each be 0-7, got {text[4:6]}. / "
            f"{code!r}: 5〜6桁目(2次メッシュ)はそれぞれ 0〜7 です(指定値: {text[4:6]})。"
        )
    if len(text) >= 9 and any(digit not in "1234" for digit in text[8:]):
        raise ValueError(
            f"{code!r}: digits 9-11 (half, quarter, eighth) must each be 1-4, got {text[8:]}. / "
            f"{code!r}: 9〜11桁目(2分の1・4分の1・8分の1メッシュ)はそれぞれ 1〜4 です(指定値: {text[8:]})。"
        )
    return text


# --------------------------------------------------------------------------------------------
# Position -> code


def to_meshcode(lat, lon, level: int = 3):
    """JIS X 0410 mesh code of a position (or of many positions at once).

    Parameters
    ----------
    lat, lon : float, array-like or pandas.Series
        Latitude and longitude in decimal degrees (JGD2011 / WGS 84; the two differ by far less
        than a cell). Arrays must have the same shape.
    level : {1, 2, 3, 4, 5, 6}, default 3
        1: 80 km, 2: 10 km, 3: 1 km (the standard mesh), 4: 500 m, 5: 250 m, 6: 125 m.

    Returns
    -------
    str, numpy.ndarray of str or pandas.Series of str
        The code as digits without separators (e.g. ``'54400098'``): a ``str`` for scalars, an
        array of the input's shape for arrays, a Series with ``lat``'s index for Series.

    Raises
    ------
    ValueError
        If a position is missing (NaN) or outside lat [20, 46), lon [122, 154), or the level is
        unknown.

    Notes
    -----
    A point exactly on a cell edge goes to the cell to its north / east (floor rule, as
    ``jismesh`` does); see the module docstring for the exact-arithmetic scheme.

    Examples
    --------
    >>> to_meshcode(36.0828, 140.1114)
    '54400098'
    >>> to_meshcode([36.0828, 35.6812], [140.1114, 139.7671], level=1).tolist()
    ['5440', '5339']
    """
    level = _check_level(level)
    lat_array = _as_float_array(lat, "lat")
    lon_array = _as_float_array(lon, "lon")
    try:
        lat_array, lon_array = np.broadcast_arrays(lat_array, lon_array)
    except ValueError:
        raise ValueError(
            f"lat and lon must have the same length, got shapes {lat_array.shape} and {lon_array.shape}. "
            f"/ lat と lon の長さをそろえてください(形状 {lat_array.shape} と {lon_array.shape})。"
        ) from None
    _check_range(lat_array, "lat", *LAT_RANGE_DEG)
    _check_range(lon_array, "lon", *LON_RANGE_DEG)

    rows = _floor_units(lat_array, _LAT_UNITS_PER_DEG, 0)  # level-6 rows north of the equator
    cols = _floor_units(lon_array, _LON_UNITS_PER_DEG, _LON_ORIGIN_DEG)  # columns east of 100° E
    # Level 1: 40' bands (= 640 units) and whole degrees (= 640 units).
    code = (rows // 640) * 100 + cols // 640
    if level >= 2:  # 8 x 8 inside the first level
        code = code * 100 + (rows % 640 // 80) * 10 + cols % 640 // 80
    if level >= 3:  # 10 x 10 inside the second level
        code = code * 100 + (rows % 80 // 8) * 10 + cols % 80 // 8
    for finer in (4, 5, 6):  # halves: 1 SW, 2 SE, 3 NW, 4 NE
        if level >= finer:
            size = _UNITS[finer]
            code = code * 10 + (rows % (2 * size) // size) * 2 + cols % (2 * size) // size + 1

    if isinstance(lat, pd.Series):
        return pd.Series(code.astype(str).astype(object), index=lat.index, name="mesh_code")
    if code.ndim == 0:
        return str(int(code))
    return code.astype(str).astype(object)


# --------------------------------------------------------------------------------------------
# Code -> geometry


def meshcode_level(code) -> int:
    """Level (1-6) of a mesh code, from its number of digits (4, 6, 8, 9, 10, 11).

    >>> meshcode_level("54400098")
    3
    """
    return _LENGTH_TO_LEVEL[len(_normalise_code(code))]


def parent_meshcode(code, level: int) -> str:
    """The code of the level-``level`` cell that contains cell ``code`` (a prefix of it).

    >>> parent_meshcode("544000981", 2)
    '544000'
    """
    text = _normalise_code(code)
    level = _check_level(level)
    if level > _LENGTH_TO_LEVEL[len(text)]:
        raise ValueError(
            f"Level {level} is finer than the code {text!r} (level {_LENGTH_TO_LEVEL[len(text)]}); a "
            f"parent must be coarser. / 親メッシュは元のコード {text!r}({_LENGTH_TO_LEVEL[len(text)]}次)"
            f"より粗い次数にしてください(指定: {level})。"
        )
    return text[: LEVELS[level][2]]


def _south_west_units(text: str) -> tuple[int, int]:
    rows = int(text[0:2]) * 640
    cols = int(text[2:4]) * 640
    if len(text) >= 6:
        rows += int(text[4]) * 80
        cols += int(text[5]) * 80
    if len(text) >= 8:
        rows += int(text[6]) * 8
        cols += int(text[7]) * 8
    for position, finer in zip(range(8, len(text)), (4, 5, 6), strict=False):
        quarter = int(text[position]) - 1  # 0 SW, 1 SE, 2 NW, 3 NE
        rows += (quarter // 2) * _UNITS[finer]
        cols += (quarter % 2) * _UNITS[finer]
    return rows, cols


def meshcode_bounds(code) -> tuple[float, float, float, float]:
    """Edges of a mesh cell: ``(south, west, north, east)`` in decimal degrees.

    Parameters
    ----------
    code : str or int
        A mesh code of level 1-6 (4, 6, 8, 9, 10 or 11 digits; hyphens are ignored).

    Returns
    -------
    tuple of float
        ``(south, west, north, east)``. Each is one exact fraction divided once, so the edges
        shared by neighbouring cells are the same floats.

    Examples
    --------
    >>> meshcode_bounds("54400098")
    (36.075, 140.1, 36.083333333333336, 140.1125)
    """
    text = _normalise_code(code)
    size = _UNITS[_LENGTH_TO_LEVEL[len(text)]]
    rows, cols = _south_west_units(text)
    return (
        rows / _LAT_UNITS_PER_DEG,
        _LON_ORIGIN_DEG + cols / _LON_UNITS_PER_DEG,
        (rows + size) / _LAT_UNITS_PER_DEG,
        _LON_ORIGIN_DEG + (cols + size) / _LON_UNITS_PER_DEG,
    )


def meshcode_center(code) -> tuple[float, float]:
    """Centre of a mesh cell as ``(lat, lon)`` in decimal degrees.

    >>> meshcode_center("54400098")
    (36.079166666666666, 140.10625)
    """
    text = _normalise_code(code)
    size = _UNITS[_LENGTH_TO_LEVEL[len(text)]]
    rows, cols = _south_west_units(text)
    # Twice the units so that the half cell stays an integer until the one division.
    return (
        (2 * rows + size) / (2 * _LAT_UNITS_PER_DEG),
        _LON_ORIGIN_DEG + (2 * cols + size) / (2 * _LON_UNITS_PER_DEG),
    )


def mesh_polygon(code):
    """The cell as a shapely rectangle, x = longitude, y = latitude (GeoJSON order).

    >>> mesh_polygon("5440").bounds
    (140.0, 36.0, 141.0, 36.666666666666664)
    """
    from shapely.geometry import box  # shapely is only needed for drawing and joins

    south, west, north, east = meshcode_bounds(code)
    return box(west, south, east, north)


# --------------------------------------------------------------------------------------------
# Counts per cell with suppression


def k_suppressed_counts(
    frame: pd.DataFrame,
    lat_col: str,
    lon_col: str,
    level: int = 3,
    k: int = 5,
    count_col: str | None = None,
    *,
    protect_parent_totals: bool = True,
    drop_suppressed: bool = False,
) -> pd.DataFrame:
    """Counts per mesh cell, with cells of fewer than ``k`` hidden.

    A cell that holds one or two people tells who was there; a common rule for published
    statistics is to hide ("suppress") every cell whose count is below a threshold ``k``
    (e.g. ``k = 5``). Hiding one cell is not enough when totals are also known: if exactly one
    cell inside a parent cell is hidden, its count is the parent's total minus the published
    ones. *Complementary suppression* then hides a second cell, here the smallest published
    cell of that parent (ties broken by code), so that only the sum of the hidden cells can
    be recovered.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per observation (a detection, a person, a device) or, with ``count_col``, one
        row per already counted group.
    lat_col, lon_col : str
        Columns with latitude and longitude in decimal degrees.
    level : {1, 2, 3, 4, 5, 6}, default 3
        Mesh level of the cells (3 = 1 km).
    k : int, default 5
        Cells with a count below ``k`` are suppressed (``k = 1`` suppresses nothing).
    count_col : str, optional
        Column of non-negative counts to add up per cell; by default each row counts 1.
    protect_parent_totals : bool, default True
        Complementary suppression against the parent (one level coarser; for level 1 the
        table's grand total): where exactly one cell of a parent is below ``k``, also suppress
        the smallest other cell of that parent.
    drop_suppressed : bool, default False
        Drop suppressed rows instead of marking them.

    Returns
    -------
    pandas.DataFrame
        Columns ``mesh_code`` (str), ``count`` (nullable ``Int64``, or ``Float64`` for
        fractional ``count_col`` values; ``<NA>`` where suppressed),
        ``suppressed`` (bool) and ``reason`` (``""``, ``"below_k"`` or ``"complementary"``),
        sorted by ``mesh_code``. The true count of a suppressed cell is never in the result.

    Notes
    -----
    This is the teaching minimum, not full disclosure control. It protects against one layer
    of parent totals. If totals at several levels are published (e.g. 1 km cells and their 10
    km and 80 km totals), or the same data are cut in other ways (by hour, by municipality),
    differences between tables can still reveal hidden cells; statistical offices solve this
    as an optimisation problem (e.g. tau-ARGUS, Hundepool et al., *Statistical Disclosure
    Control*, Wiley 2012, ch. 4). A parent with a single cell cannot be protected by a second
    suppression: if its total is published, the lone cell is known.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"frame must be a pandas DataFrame, not {type(frame).__name__}. / frame は pandas の "
            f"DataFrame にしてください({type(frame).__name__} は使えません)。"
        )
    needed = [lat_col, lon_col] + ([count_col] if count_col is not None else [])
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise KeyError(
            f"Column(s) {missing} not in frame; it has {list(frame.columns)}. / 列 {missing} が "
            f"frame にありません(ある列: {list(frame.columns)})。"
        )
    level = _check_level(level)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(
            f"k must be a whole number >= 1 (e.g. 5), got {k!r}. / k は 1 以上の整数(例: 5)に"
            f"してください(指定値: {k!r})。"
        )

    codes = to_meshcode(frame[lat_col], frame[lon_col], level)
    if count_col is None:
        weights = pd.Series(1, index=frame.index)
    else:
        weights = pd.to_numeric(frame[count_col], errors="coerce")
        if weights.isna().any() or (weights < 0).any():
            raise ValueError(
                f"Column {count_col!r} must hold non-negative numbers with no missing values. / "
                f"列 {count_col!r} は欠損のない0以上の数値にしてください。"
            )
    counts = weights.groupby(codes.to_numpy()).sum().sort_index()
    table = pd.DataFrame({"mesh_code": counts.index.astype(str), "true_count": counts.to_numpy()})
    table["suppressed"] = table["true_count"] < k
    table["reason"] = np.where(table["suppressed"], "below_k", "")

    if protect_parent_totals:
        parent_length = LEVELS[level - 1][2] if level > 1 else 0
        parents = table["mesh_code"].str[:parent_length]
        for _, members in table.groupby(parents, sort=True):
            if members["suppressed"].sum() != 1:
                continue
            published = members[~members["suppressed"]]
            if published.empty:
                continue  # the lone cell of its parent: nothing else can hide it (see Notes)
            smallest = published.sort_values(["true_count", "mesh_code"]).index[0]
            table.loc[smallest, ["suppressed", "reason"]] = [True, "complementary"]

    # Nullable dtype so that a hidden count is <NA>, never a number that could leak.
    whole = bool((table["true_count"] == np.floor(table["true_count"])).all())
    table["count"] = table["true_count"].astype("Int64" if whole else "Float64").mask(table["suppressed"])
    result = table[["mesh_code", "count", "suppressed", "reason"]]
    if drop_suppressed:
        result = result[~result["suppressed"]]
    return result.reset_index(drop=True)
