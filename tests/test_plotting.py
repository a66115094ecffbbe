"""sscity.plotting: Japanese text renders with the bundled font; choropleth maps label every area."""

from __future__ import annotations

import io
import warnings

import geopandas as gpd
import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
from fontTools.ttLib import TTFont
from shapely.geometry import box
from sscity.plotting import JAPANESE_FONT, PALETTE, choropleth, japanese_font_path, use_course_style

mpl.use("Agg")  # headless: no display needed (allowed after importing pyplot, before any figure)

DISTRICTS_JA = ["筑波", "大穂", "豊里", "桜", "谷田部", "茎崎"]
CITY_JA = "つくば市"


@pytest.fixture
def course_style():
    """The course style inside an rc_context, so other tests keep matplotlib's defaults."""
    with mpl.rc_context():
        use_course_style()
        yield
    plt.close("all")


def _render(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    return buffer.getvalue()


def test_bundled_font_has_every_glyph_we_use():
    with mpl.rc_context():  # importing matplotlib_fontja switches the global font
        path = japanese_font_path()
    assert path.is_file()
    font = TTFont(str(path), lazy=True)
    cmap = font.getBestCmap()
    needed = set("".join(DISTRICTS_JA) + CITY_JA + "–0123456789.[]")
    missing = sorted(ch for ch in needed if ord(ch) not in cmap)
    assert not missing, f"IPAexGothic lacks glyphs for {missing}"
    assert JAPANESE_FONT in font["name"].getDebugName(1)


def test_course_style_renders_japanese_without_missing_glyph_warnings(course_style):
    fig, ax = plt.subplots()
    ax.bar(DISTRICTS_JA, np.arange(1, 7), color=PALETTE["blue"])
    ax.set_title(f"{CITY_JA}の地区")
    ax.set_ylabel("人数 (−10 から 10)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" would fail here
        png = _render(fig)
    assert png.startswith(b"\x89PNG")


def test_without_the_course_font_japanese_does_warn():
    # The check above is meaningful: DejaVu Sans alone has no kanji.
    with mpl.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
        fig, ax = plt.subplots()
        ax.set_title(CITY_JA)
        with pytest.warns(UserWarning, match="missing from font"):
            _render(fig)
    plt.close("all")


@pytest.fixture
def squares():
    return gpd.GeoDataFrame(
        {
            "name": DISTRICTS_JA[:3],
            "happiness": [6.4, 7.25, np.nan],
            "lower": [6.1, 7.0, np.nan],
            "upper": [6.7, 7.5, np.nan],
        },
        geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1), box(0, 1, 2, 2)],
        crs="EPSG:6677",
    )


def test_choropleth_labels_every_area_and_adds_a_colour_bar(course_style, squares):
    ax = choropleth(squares, "happiness", label="平均幸福度 (0–10)", lower="lower", upper="upper",
                    names="name", title=CITY_JA)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == len(squares)
    assert texts[0] == "筑波\n6.40\n[6.10–6.70]"
    assert texts[1] == "大穂\n7.25\n[7.00–7.50]"
    assert texts[2] == "豊里\nno data / データなし"  # missing value: said in words (EN and JA), not only grey
    # Labels sit inside their polygons and have a halo.
    for text, geom in zip(ax.texts, squares.geometry, strict=True):
        assert geom.contains(gpd.points_from_xy([text.xy[0]], [text.xy[1]])[0])
        assert text.get_path_effects()
    fig = ax.figure
    assert len(fig.axes) == 2
    assert fig.axes[1].get_ylabel() == "平均幸福度 (0–10)"
    assert ax.get_title() == CITY_JA
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _render(fig)


def test_course_style_makes_legends_readable(course_style):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="line / 線")
    legend = ax.legend(title="legend / 凡例")
    assert min(t.get_fontsize() for t in legend.get_texts()) >= 10  # 11 pt, the text size
    assert legend.get_title().get_fontsize() >= 10


def test_choropleth_options_and_errors(course_style, squares):
    fig, ax = plt.subplots()
    out = choropleth(squares.iloc[:2], "happiness", ax=ax, fmt="{:.1f}", annotate=False)
    assert out is ax and not ax.texts
    assert fig.axes[1].get_ylabel() == "happiness"
    ax = choropleth(squares.iloc[:2], "happiness", fmt="{:.1f}")
    assert [t.get_text() for t in ax.texts] == ["6.4", "7.2"]
    with pytest.raises(KeyError, match="'score' is not a column"):
        choropleth(squares, "score")
    with pytest.raises(ValueError, match="both lower and upper"):
        choropleth(squares, "happiness", lower="lower")
    with pytest.raises(TypeError, match="GeoDataFrame"):
        choropleth(squares.drop(columns="geometry"), "happiness")
