"""One figure style for the whole course.

- A Japanese-capable font that works offline: IPAexGothic, shipped inside the
  ``matplotlib-fontja`` package (IPA Font License), so district and station names render
  in Japanese without any system font.
- A colour-blind-safe palette (Okabe & Ito, 2008). Figures never carry information by
  colour alone: pair colours with labels, hatching or markers.
- Maps: :func:`choropleth` colours areas by a value (perceptually uniform, colour-blind
  safe "cividis") *and* writes the value -- with its interval, if given -- on each area.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl
from matplotlib import font_manager

__all__ = ["JAPANESE_FONT", "PALETTE", "choropleth", "japanese_font_path", "use_course_style"]

JAPANESE_FONT = "IPAexGothic"

# Okabe-Ito: distinguishable under the common colour-vision deficiencies.
PALETTE = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}


def japanese_font_path() -> Path:
    """Path of the bundled IPAexGothic TrueType file (from the matplotlib-fontja package)."""
    # Located without importing the package: its import switches matplotlib's global font.
    from importlib.util import find_spec

    spec = find_spec("matplotlib_fontja")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The Japanese font package matplotlib-fontja is missing: run `make setup` "
            "(or `pip install matplotlib-fontja`).")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / "ipaexg.ttf"
    if not path.is_file():
        raise FileNotFoundError(f"IPAexGothic not found at {path}; reinstall matplotlib-fontja.")
    return path


def use_course_style() -> None:
    """Apply the course's figure style: Japanese-capable font, palette, readable sizes
    (legends at the 11-pt text size)."""
    font_manager.fontManager.addfont(str(japanese_font_path()))
    mpl.rcParams.update(
        {
            "font.family": "sans-serif",
            "font.sans-serif": [JAPANESE_FONT, "DejaVu Sans"],
            "axes.prop_cycle": mpl.cycler(
                color=[PALETTE[k] for k in ("blue", "orange", "bluish_green", "vermillion",
                                            "reddish_purple", "sky_blue", "yellow", "black")]
            ),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "figure.dpi": 100,
            "figure.figsize": (7.0, 4.0),
            "font.size": 11,
            # Legends at the text size (11 pt, matplotlib's "medium"): readable; a crowded
            # legend goes outside the axes rather than smaller.
            "legend.fontsize": "medium",
            "legend.title_fontsize": "medium",
            # A minus sign IPAexGothic has, so negative ticks do not warn.
            "axes.unicode_minus": False,
        }
    )


NO_DATA = "no data / データなし"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float | int) and math.isnan(value))


def _format_value(fmt: str, value, lower=None, upper=None) -> str:
    """``value`` and, when both bounds are known, ``[lower–upper]`` on a second line."""
    if _missing(value):
        return NO_DATA
    text = fmt.format(value)
    if not (_missing(lower) or _missing(upper)):
        text += f"\n[{fmt.format(lower)}–{fmt.format(upper)}]"
    return text


def choropleth(gdf, column: str, ax=None, label: str | None = None, lower: str | None = None,
               upper: str | None = None, fmt: str = "{:.2f}", cmap: str = "cividis",
               title: str | None = None, annotate: bool = True, names: str | None = None,
               vmin: float | None = None, vmax: float | None = None):
    """Map areas coloured by a value, with the value (and interval) written on each area.

    Parameters
    ----------
    gdf : GeoDataFrame
        One row per area (polygons), e.g. districts joined with
        :func:`sscity.survey.group_estimates`.
    column : str
        The numeric column that sets the colour.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made if omitted.
    label : str, optional
        Label of the colour bar (default: ``column``). Say what and in which unit, e.g.
        ``"Mean happiness (0-10)"``.
    lower, upper : str, optional
        Columns with the interval bounds; when both are given, each area reads
        ``value`` and ``[lower–upper]``.
    fmt : str, default "{:.2f}"
        Format of the numbers written on the map (e.g. ``"{:.0%}"`` for shares).
    cmap : str, default "cividis"
        Colour map; cividis is perceptually uniform and readable with colour-vision
        deficiencies.
    title : str, optional
        Axes title.
    annotate : bool, default True
        Write the numbers on the areas (keep it on: the colour alone must not carry the
        information).
    names : str, optional
        Column with area names to write above the numbers (e.g. ``"name_ja"``).
    vmin, vmax : float, optional
        Colour-scale limits, to compare several maps on one scale.

    Returns
    -------
    matplotlib Axes
        The map's Axes; the colour bar is ``ax.figure.axes[-1]``. Areas with no value are
        drawn light grey with hatching and read "no data / データなし".

    Notes
    -----
    Each label sits at the area's ``representative_point()`` (always inside the
    polygon, unlike the centroid) on a white halo, so it stays legible on any colour.
    """
    import geopandas as gpd
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import patheffects
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if not isinstance(gdf, gpd.GeoDataFrame):
        raise TypeError(f"gdf must be a GeoDataFrame, not {type(gdf).__name__}; see geopandas.GeoDataFrame.")
    if len(gdf) == 0:
        raise ValueError("gdf has no rows: there is nothing to map.")
    for name, col in (("column", column), ("lower", lower), ("upper", upper), ("names", names)):
        if col is not None and col not in gdf.columns:
            raise KeyError(f"{name}={col!r} is not a column of gdf; the columns are {list(gdf.columns)}.")
    if (lower is None) != (upper is None):
        raise ValueError("Give both lower and upper (the interval's two columns), or neither.")
    try:
        values = gdf[column].to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        raise TypeError(f"Column {column!r} must be numeric to colour a map.") from None
    if np.isnan(values).all():
        raise ValueError(f"Column {column!r} has no values (all missing): there is nothing to colour.")

    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 6.0))
    norm = Normalize(vmin=np.nanmin(values) if vmin is None else vmin,
                     vmax=np.nanmax(values) if vmax is None else vmax)
    colormap = mpl.colormaps[cmap]
    has_value = ~np.isnan(values)
    gdf[has_value].plot(ax=ax, color=colormap(norm(values[has_value])), edgecolor="white", linewidth=1.2)
    if not has_value.all():
        gdf[~has_value].plot(ax=ax, color="#DDDDDD", edgecolor="white", hatch="///", linewidth=1.2)

    colorbar = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=ax, shrink=0.7)
    colorbar.set_label(label if label is not None else column)

    if annotate:
        halo = [patheffects.withStroke(linewidth=3, foreground="white")]
        points = gdf.geometry.representative_point()
        for i, point in enumerate(points):
            if point is None or point.is_empty:
                continue
            row = gdf.iloc[i]
            text = _format_value(fmt, None if np.isnan(values[i]) else values[i],
                                 None if lower is None else row[lower],
                                 None if upper is None else row[upper])
            if names is not None:
                text = f"{row[names]}\n{text}"
            ax.annotate(text, xy=(point.x, point.y), ha="center", va="center", fontsize=9,
                        color=PALETTE["black"], path_effects=halo)
    if title:
        ax.set_title(title)
    ax.set_axis_off()
    return ax
