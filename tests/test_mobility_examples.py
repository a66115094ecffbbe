"""The docstring examples and the quick ``main()`` examples of sscity.mobility stay correct."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = (
    "params",
    "kinematics",
    "world",
    "envelope",
    "control",
    "crowd",
    "metrics",
    "stability",
    "render",
    "episode",
    "routing",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"sscity.mobility.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of sscity.mobility.{name} failed"


def test_quick_main_examples(capsys):
    from sscity.mobility import control, crowd, kinematics, params, stability

    kinematics.main()
    assert "[0.4704 6.6333 3.    ]" in capsys.readouterr().out
    params.main()
    assert "standing" in capsys.readouterr().out
    stability.main()
    assert "max_deceleration_mps2" in capsys.readouterr().out
    control.main()
    assert "final pose: [4.9" in capsys.readouterr().out
    crowd.main()
    assert "mean speed" in capsys.readouterr().out


def test_public_api_is_complete():
    import sscity.mobility as mobility

    for name in mobility.__all__:
        assert getattr(mobility, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'teleport'"):
        mobility.teleport  # noqa: B018
