"""JIS X 0410 mesh codes (sscity.sensing.mesh) against the `jismesh` package and published values.

References used here, none written by us:

- ``jismesh`` (Haruki Nishikawa, PyPI, MIT): ``jismesh.utils.to_meshcode`` / ``to_meshpoint``.
- JIS X 0410 and the Statistics Bureau of Japan (総務省統計局, 地域メッシュ統計, ch. 1 §4): cell sizes
  40' x 1°, 5' x 7'30", 30" x 45", halves 15" x 22.5" ...; first-level code = south latitude x 1.5
  and west longitude - 100; halves numbered 1 SW, 2 SE, 3 NW, 4 NE.
- The worked example used in Japanese GIS references (e.g. the Statistics Bureau's figures, and
  Gikosha's table of the standard mesh system): the first-level cell with south edge 35°20' and
  west edge 139° is 5339; its second-level cell in row 2 (from the south), column 3 (from the
  west) is 533923; the third-level cell in row 4, column 3 of that is 53392343.
"""

from __future__ import annotations

from fractions import Fraction

import jismesh.utils as ju
import numpy as np
import pandas as pd
import pytest
from sscity.sensing.mesh import (
    k_suppressed_counts,
    mesh_polygon,
    meshcode_bounds,
    meshcode_center,
    meshcode_level,
    parent_meshcode,
    to_meshcode,
)

LEVELS = [1, 2, 3, 4, 5, 6]
# Cell size of each level in level-6 units (1/960° of latitude, 1/640° of longitude).
UNITS = {1: 640, 2: 80, 3: 8, 4: 4, 5: 2, 6: 1}


def _random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(20.0, 46.0, n), rng.uniform(122.0, 154.0, n)


# ---------------------------------------------------------------------------------------------
# Known codes


def test_tsukuba_station_matches_jismesh_and_the_tx_station_codes():
    # Tsukuba station (TX terminus), 36.0828 N 140.1114 E: jismesh says 54400098 at level 3.
    assert str(ju.to_meshcode(36.0828, 140.1114, 3)) == "54400098"
    assert to_meshcode(36.0828, 140.1114) == "54400098"
    assert to_meshcode(36.0828, 140.1114, level=3) == "54400098"
    for level in LEVELS:
        assert to_meshcode(36.0828, 140.1114, level) == str(ju.to_meshcode(36.0828, 140.1114, level))
    # Level-3 codes of the TX stations in Tsukuba: each cell's centre maps back to its code,
    # in jismesh as in ours.
    for code in ["54400098", "54400096", "54400074", "54400034"]:
        lat, lon = meshcode_center(code)
        assert to_meshcode(lat, lon) == code == str(ju.to_meshcode(lat, lon, 3))


def test_published_worked_example_5339_23_43():
    # South edge 35°20' x 1.5 = 53, west edge 139° - 100 = 39.
    assert meshcode_bounds("5339") == pytest.approx((35 + 20 / 60, 139.0, 36.0, 140.0), abs=1e-12)
    assert meshcode_bounds("5339")[0] * 1.5 == pytest.approx(53)
    # Row 2, column 3 of 5' x 7'30": south 35°30', west 139°22'30".
    assert meshcode_bounds("533923") == pytest.approx(
        (35.5, 139 + 22.5 / 60, 35.5 + 5 / 60, 139 + 30 / 60), abs=1e-12
    )
    # Row 4, column 3 of 30" x 45": south 35°32'00", west 139°24'45".
    assert meshcode_bounds("53392343")[:2] == pytest.approx((35 + 32 / 60, 139 + 24.75 / 60), abs=1e-12)
    # The half mesh 1 is the south-west quarter; 4 the north-east.
    south, west, north, east = meshcode_bounds("53392343")
    assert meshcode_bounds("533923431") == pytest.approx(
        (south, west, (south + north) / 2, (west + east) / 2), abs=1e-12
    )
    assert meshcode_bounds("533923434") == pytest.approx(
        ((south + north) / 2, (west + east) / 2, north, east), abs=1e-12
    )


@pytest.mark.parametrize(
    ("level", "height_arcsec", "width_arcsec"),
    [(1, 2400, 3600), (2, 300, 450), (3, 30, 45), (4, 15, 22.5), (5, 7.5, 11.25), (6, 3.75, 5.625)],
)
def test_cell_sizes_are_the_standards(level, height_arcsec, width_arcsec):
    code = to_meshcode(36.0828, 140.1114, level)
    assert len(code) == [4, 6, 8, 9, 10, 11][level - 1] and meshcode_level(code) == level
    south, west, north, east = meshcode_bounds(code)
    assert (north - south) * 3600 == pytest.approx(height_arcsec, abs=1e-9)
    assert (east - west) * 3600 == pytest.approx(width_arcsec, abs=1e-9)
    assert south <= 36.0828 < north and west <= 140.1114 < east


# ---------------------------------------------------------------------------------------------
# Against jismesh


@pytest.mark.parametrize("level", LEVELS)
def test_random_points_match_jismesh(level):
    lat, lon = _random_points(20_000, seed=1300 + level)
    ours = to_meshcode(lat, lon, level)
    theirs = ju.to_meshcode(lat, lon, level).astype(str)
    assert ours.shape == lat.shape
    assert (ours == theirs).all()


@pytest.mark.parametrize("level", LEVELS)
def test_bounds_and_centre_match_jismesh(level):
    lat, lon = _random_points(300, seed=1400 + level)
    for code in to_meshcode(lat, lon, level):
        south, west, north, east = meshcode_bounds(code)
        assert (south, west) == pytest.approx(ju.to_meshpoint(int(code), 0, 0), abs=1e-12)
        assert (north, east) == pytest.approx(ju.to_meshpoint(int(code), 1, 1), abs=1e-12)
        assert meshcode_center(code) == pytest.approx(ju.to_meshpoint(int(code), 0.5, 0.5), abs=1e-12)
        assert to_meshcode(*meshcode_center(code), level) == code


def test_scalar_list_array_and_series_agree():
    lat, lon = _random_points(50, seed=7)
    as_array = to_meshcode(lat, lon, 4)
    assert isinstance(as_array, np.ndarray) and all(isinstance(code, str) for code in as_array)
    assert list(to_meshcode(list(lat), list(lon), 4)) == list(as_array)
    assert [to_meshcode(a, b, 4) for a, b in zip(lat, lon, strict=True)] == list(as_array)
    series = to_meshcode(pd.Series(lat, index=range(100, 150)), pd.Series(lon, index=range(100, 150)), 4)
    assert isinstance(series, pd.Series) and list(series.index) == list(range(100, 150))
    assert list(series) == list(as_array)
    grid = to_meshcode(lat.reshape(5, 10), lon.reshape(5, 10), 4)
    assert grid.shape == (5, 10) and list(grid.ravel()) == list(as_array)


# ---------------------------------------------------------------------------------------------
# Boundaries


def _grid_lines(level: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions exactly on grid lines of ``level`` (every ``step``-th line), as the nearest floats."""
    size = UNITS[level]
    lats = np.array([row / 960 for row in range(20 * 960, 46 * 960, size * step)])
    lons = np.array([100 + col / 640 for col in range(22 * 640, 54 * 640, size * step)])
    lat, lon = np.meshgrid(lats, lons)
    return lat.ravel(), lon.ravel()


@pytest.mark.parametrize("level", LEVELS)
def test_points_on_lines_belong_to_the_cell_north_east(level):
    # A point exactly on a grid line is the south-west corner of the cell it is given (the
    # floor rule: a cell holds its south and west edges). The edges are compared exactly.
    lat, lon = _grid_lines(level, step={1: 1, 2: 3, 3: 17, 4: 29, 5: 59, 6: 113}[level])
    codes = to_meshcode(lat, lon, level)
    for code, a, b in zip(codes, lat, lon, strict=True):
        assert meshcode_bounds(code)[:2] == (a, b)


@pytest.mark.parametrize("level", LEVELS)
def test_where_jismesh_differs_on_a_line_it_is_floating_point_drift(level):
    # jismesh takes the same floor rule but through chained float remainders (lat % (2/3) %
    # (1/12) ...), so on exact lines it sometimes lands in the neighbour to the south or west.
    # Wherever it differs from us, the point is on the north or east edge of jismesh's cell,
    # i.e. the two rules agree and only the rounding differs. A hair (1e-9°, ~0.1 mm) off the
    # line, both agree on both sides.
    lat, lon = _grid_lines(level, step={1: 1, 2: 3, 3: 17, 4: 29, 5: 59, 6: 113}[level])
    ours = to_meshcode(lat, lon, level)
    theirs = ju.to_meshcode(lat, lon, level).astype(str)
    differ = np.nonzero(ours != theirs)[0]
    for index in differ:
        south, west, north, east = meshcode_bounds(theirs[index])
        on_north_or_east = lat[index] == pytest.approx(north, abs=1e-12) or lon[index] == pytest.approx(
            east, abs=1e-12
        )
        assert on_north_or_east and south <= lat[index] and west <= lon[index]
    hair = 1e-9
    inside = (lat + hair < 46) & (lon + hair < 154)
    assert (to_meshcode(lat[inside] + hair, lon[inside] + hair, level) == ours[inside]).all()
    assert (ju.to_meshcode(lat[inside] + hair, lon[inside] + hair, level).astype(str) == ours[inside]).all()
    outside_sw = (lat - hair >= 20) & (lon - hair >= 122)
    assert (
        to_meshcode(lat[outside_sw] - hair, lon[outside_sw] - hair, level)
        == ju.to_meshcode(lat[outside_sw] - hair, lon[outside_sw] - hair, level).astype(str)
    ).all()


def test_decimal_lines_are_not_lost_to_floor_drift():
    # 36.1 has no exact binary value; 36.1 * 960 must still count as 34656 whole units.
    # Exact rational arithmetic (Fraction of the decimal string) is the judge: the expected
    # level-6 cell is the one whose centre is half a unit north-east of the exact line.
    cases = [("36.1", "140.1"), ("36.025", "140.0125"), ("35.5", "139.375"), ("20.0", "122.3")]
    for text_lat, text_lon in cases:
        rows = int(Fraction(text_lat) * 960)
        cols = int((Fraction(text_lon) - 100) * 640)
        expected = to_meshcode((rows + 0.5) / 960, 100 + (cols + 0.5) / 640, 6)
        assert to_meshcode(float(text_lat), float(text_lon), 6) == expected
    # (jismesh 2.1.0 puts (36.1, 140.1) in 54401027222, the cell to the south-west, by float drift.)
    # (20.0, 122.3) is on a level-3 line: the cell to the east, 30220204 (jismesh's float
    # chain gives 30220203 here).
    assert to_meshcode(20.0, 122.3, 3) == "30220204"
    assert meshcode_bounds("30220204")[:2] == (20.0, 122.3)


def test_neighbouring_cells_share_identical_edges():
    south, west, north, east = meshcode_bounds("54400098")
    assert meshcode_bounds("54400099")[1] == east  # east neighbour
    assert meshcode_bounds("54401008")[0] == north  # north neighbour, in the next 10 km row
    assert meshcode_bounds("5440")[2] == meshcode_bounds("5540")[0]


# ---------------------------------------------------------------------------------------------
# Codes, parents, polygons


def test_parents_are_prefixes_and_contain_the_child():
    code = to_meshcode(36.0828, 140.1114, 6)
    assert [parent_meshcode(code, level) for level in LEVELS] == [
        to_meshcode(36.0828, 140.1114, level) for level in LEVELS
    ]
    child = meshcode_bounds(code)
    for level in LEVELS:
        parent = meshcode_bounds(parent_meshcode(code, level))
        assert (
            parent[0] <= child[0]
            and parent[1] <= child[1]
            and child[2] <= parent[2]
            and child[3] <= parent[3]
        )


def test_codes_may_be_integers_or_hyphenated():
    assert meshcode_bounds(54400098) == meshcode_bounds("5440-00-98") == meshcode_bounds("54400098")


def test_polygon_is_the_bounds_in_lon_lat_order():
    polygon = mesh_polygon("54400098")
    south, west, north, east = meshcode_bounds("54400098")
    assert polygon.bounds == (west, south, east, north)
    assert polygon.area == pytest.approx((30 / 3600) * (45 / 3600))
    from shapely.geometry import Point

    assert polygon.contains(Point(140.1114, 36.0828))


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("lat", "lon", "match"),
    [
        (19.99, 140.0, "outside Japan's mesh coverage"),
        (46.0, 140.0, "outside Japan's mesh coverage"),
        (36.0, 121.9, "範囲"),
        (36.0, 154.0, "outside"),
        (140.1114, 36.0828, "swap"),
        (float("nan"), 140.0, "missing"),
    ],
)
def test_bad_positions_say_what_to_fix(lat, lon, match):
    with pytest.raises(ValueError, match=match):
        to_meshcode(lat, lon)


def test_bad_levels_and_shapes():
    for level in [0, 7, 2.5, "3", True, 1000]:
        with pytest.raises(ValueError, match="level must be one of"):
            to_meshcode(36.0, 140.0, level)
    with pytest.raises(ValueError, match="same length"):
        to_meshcode([36.0, 36.1], [140.0, 140.1, 140.2])
    with pytest.raises(TypeError, match="decimal degrees"):
        to_meshcode("north", 140.0)


@pytest.mark.parametrize(
    ("code", "match"),
    [
        ("5440009", "4, 6, 8, 9, 10, 11 digits"),
        ("54400098150", "9-11"),  # 11 digits but '5' and '0' are not quarters
        ("5440009a", "not a JIS X 0410 mesh code"),
        ("544080", "0-7"),
        ("544000985", "1-4"),
        ("1234", "outside Japan"),
        ("5460", "outside Japan"),
        ("５４４０", "not a JIS X 0410"),  # full-width digits
    ],
)
def test_bad_codes_say_what_to_fix(code, match):
    with pytest.raises(ValueError, match=match):
        meshcode_bounds(code)


def test_bad_code_types_and_parent_levels():
    with pytest.raises(TypeError, match="string or an integer"):
        meshcode_center(5440.0)
    with pytest.raises(ValueError, match="coarser"):
        parent_meshcode("5440", 3)


# ---------------------------------------------------------------------------------------------
# k-suppressed counts


def _people(counts: dict[str, int]) -> pd.DataFrame:
    rows = []
    for code, n in counts.items():
        rows += [meshcode_center(code)] * n
    return pd.DataFrame(rows, columns=["lat", "lon"])


def test_cells_below_k_are_marked_and_their_count_hidden():
    frame = _people({"54400098": 7, "54400096": 6, "54400074": 2})
    table = k_suppressed_counts(frame, "lat", "lon", level=3, k=5, protect_parent_totals=False)
    assert list(table["mesh_code"]) == ["54400074", "54400096", "54400098"]
    assert list(table["suppressed"]) == [True, False, False]
    assert list(table["reason"]) == ["below_k", "", ""]
    assert table["count"].isna().tolist() == [True, False, False]
    assert table["count"].dtype == "Int64" and table["count"].iloc[1:].tolist() == [6, 7]
    dropped = k_suppressed_counts(
        frame, "lat", "lon", 3, 5, protect_parent_totals=False, drop_suppressed=True
    )
    assert list(dropped["mesh_code"]) == ["54400096", "54400098"]


def test_a_lone_suppressed_cell_would_be_recovered_from_the_parent_total():
    frame = _people({"54400098": 7, "54400096": 6, "54400074": 2, "54400034": 9})
    parent_total = len(frame)  # the published 10 km (level-2) total of 544000
    naive = k_suppressed_counts(frame, "lat", "lon", 3, 5, protect_parent_totals=False)
    recovered = parent_total - naive["count"].sum()  # .sum() skips <NA>
    assert recovered == 2  # the hidden cell, revealed

    protected = k_suppressed_counts(frame, "lat", "lon", 3, 5)  # protect_parent_totals=True by default
    reasons = dict(zip(protected["mesh_code"], protected["reason"], strict=True))
    assert reasons == {"54400034": "", "54400074": "below_k", "54400096": "complementary", "54400098": ""}
    # Now only the sum of the two hidden cells (2 + 6) can be recovered, not either one.
    assert parent_total - protected["count"].sum() == 8


def test_complementary_suppression_is_per_parent_and_deterministic():
    frame = _people(
        {
            # parent 544000: one cell below k -> a second one (smallest, ties by code) hidden
            "54400098": 6,
            "54400096": 6,
            "54400074": 1,
            # parent 544001: two cells below k already -> nothing more
            "54400190": 2,
            "54400191": 3,
            "54400192": 8,
            # parent 544010: a lone cell -> cannot be protected by another cell
            "54401000": 3,
            # parent 544011: nothing below k
            "54401100": 5,
        }
    )
    table = k_suppressed_counts(frame, "lat", "lon", 3, 5).set_index("mesh_code")
    assert table.loc["54400074", "reason"] == "below_k"
    assert table.loc["54400096", "reason"] == "complementary"  # 6 == 6, lower code wins
    assert table.loc["54400098", "reason"] == ""
    assert list(table.loc[["54400190", "54400191", "54400192"], "reason"]) == ["below_k", "below_k", ""]
    assert table.loc["54401000", "reason"] == "below_k"
    assert table.loc["54401100", "reason"] == "" and table.loc["54401100", "count"] == 5  # k itself is shown
    assert (table["count"].isna() == table["suppressed"]).all()


def test_count_column_and_level_one_grand_total():
    frame = pd.DataFrame(
        {
            "lat": [36.0828, 36.0828, 35.6812, 43.0687],
            "lon": [140.1114, 140.1114, 139.7671, 141.3508],
            "people": [4, 3, 2, 40],
        }
    )
    table = k_suppressed_counts(frame, "lat", "lon", level=1, k=5, count_col="people")
    # Level 1: 5440 Tsukuba (7), 5339 Tokyo (2, below k), 6441 Sapporo (40); the parent of level
    # 1 is the grand total, so the smallest other cell (5440) is hidden too.
    assert dict(zip(table["mesh_code"], table["reason"], strict=True)) == {
        "5339": "below_k",
        "5440": "complementary",
        "6441": "",
    }
    assert table.loc[table["mesh_code"] == "6441", "count"].item() == 40
    fractional = k_suppressed_counts(frame.assign(people=[0.5, 5.0, 6.0, 1.0]), "lat", "lon", 1, 5, "people")
    assert fractional["count"].dtype == "Float64"


def test_k_one_suppresses_nothing_and_matches_value_counts():
    lat, lon = _random_points(2_000, seed=13)
    frame = pd.DataFrame({"lat": lat, "lon": lon})
    table = k_suppressed_counts(frame, "lat", "lon", level=1, k=1)
    expected = pd.Series(ju.to_meshcode(lat, lon, 1).astype(str)).value_counts()
    assert not table["suppressed"].any()
    assert dict(zip(table["mesh_code"], table["count"], strict=True)) == expected.to_dict()


def test_k_suppressed_counts_bad_input():
    frame = _people({"54400098": 3})
    with pytest.raises(TypeError, match="DataFrame"):
        k_suppressed_counts(frame.to_numpy(), "lat", "lon", 3, 5)
    with pytest.raises(KeyError, match="not in frame"):
        k_suppressed_counts(frame, "latitude", "lon", 3, 5)
    for k in [0, -1, 2.5, True]:
        with pytest.raises(ValueError, match="k must be a whole number"):
            k_suppressed_counts(frame, "lat", "lon", 3, k)
    with pytest.raises(ValueError, match="non-negative"):
        k_suppressed_counts(frame.assign(n=-1), "lat", "lon", 3, 5, count_col="n")
    with pytest.raises(ValueError, match="level must be one of"):
        k_suppressed_counts(frame, "lat", "lon", 7, 5)
