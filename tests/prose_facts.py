"""Prose against computation: a number quoted in a module's text must be what the code gives.

Each module's ``tests/test_facts_<NN>.py`` lists the data-derived figures its lessons,
assignment and README quote, each with the computation that produces it, and calls
:func:`check_quoted`. The test fails when the prose changes (the quoted text is gone) or
when the code changes (the computed value no longer rounds to the quoted one), so neither
can drift alone.
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


@cache
def module_text(module: str) -> str:
    """Every markdown cell of the module's source notebooks and its README, one string.

    Whitespace runs (line breaks inside a paragraph) become one space, so a quote may span
    the author's line breaks.
    """
    folder = ROOT / "solutions" / module
    if not folder.is_dir():
        raise FileNotFoundError(f"no module folder {folder}")
    parts = [(folder / "README.md").read_text(encoding="utf-8")]
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        parts += [cell.source for cell in nb.cells if cell.cell_type == "markdown"]
    return re.sub(r"\s+", " ", "\n".join(parts))


def _number(quoted_number: str) -> float:
    cleaned = quoted_number.replace(",", "").replace("−", "-").strip()
    return float(cleaned)


def check_quoted(module: str, quote: str, number: str, computed: float, *,
                 percent: bool = False) -> None:
    """Assert that ``quote`` appears in the module's text and ``number`` matches ``computed``.

    Parameters
    ----------
    module : str
        Module folder under ``solutions/``, e.g. ``"01-survey-analytics"``.
    quote : str
        A phrase of the prose that contains ``number`` (enough words to find the right spot).
    number : str
        The number as printed in ``quote``, e.g. ``"1,069"``, ``"72.2"``, ``"−0.31"``.
    computed : float
        What the code gives. With ``percent=True`` a share in [0, 1] quoted as a percentage.
    percent : bool
        Compare ``100 * computed`` with the printed number.

    The printed number must equal ``computed`` rounded to the printed number of decimals.
    """
    if number not in quote:
        raise ValueError(f"the number {number!r} is not part of the quote {quote!r}")
    text = module_text(module)
    flat_quote = re.sub(r"\s+", " ", quote)
    assert flat_quote in text, (
        f"{module}: the prose no longer says {flat_quote!r}; update the text or this test")
    printed = _number(number)
    value = 100 * computed if percent else computed
    decimals = len(number.split(".")[1]) if "." in number else 0
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    assert math.isfinite(value) and abs(value - printed) <= tolerance, (
        f"{module}: the prose says {number} in {flat_quote!r} but the code gives {value:.6g}")
