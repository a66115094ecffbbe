"""One figure style for the whole course.

- A Japanese-capable font that works offline: IPAexGothic, shipped inside the
  ``matplotlib-fontja`` package (IPA Font License), so district and station names render
  in Japanese without any system font.
- A colour-blind-safe palette (Okabe & Ito, 2008). Figures never carry information by
  colour alone: pair colours with labels, hatching or markers.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
from matplotlib import font_manager

__all__ = ["JAPANESE_FONT", "PALETTE", "japanese_font_path", "use_course_style"]

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
    """Path of the bundled IPAexGothic TrueType file."""
    # Imported lazily: importing matplotlib_fontja also switches the global font.
    import matplotlib_fontja

    return Path(matplotlib_fontja.get_font_ttf_path())


def use_course_style() -> None:
    """Apply the course's figure style: Japanese-capable font, palette, readable sizes."""
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
            # A minus sign IPAexGothic has, so negative ticks do not warn.
            "axes.unicode_minus": False,
        }
    )
