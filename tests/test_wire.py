"""Values across the trust boundary (sscity.course.wire): what the checker rebuilds from a
student's kernel is exact built-in data, whatever the kernel sent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sscity.course import wire


def _round_trip(value):
    return wire.decode(wire.encode(value, lambda v: 0), None, None)


def test_a_float_subclass_arrives_as_a_plain_float():
    class Liar(float):
        def __eq__(self, other):
            return True

        __hash__ = float.__hash__

    back = _round_trip({"d": Liar(9000.0), "xs": [Liar(1.5)]})
    assert type(back["d"]) is float and back["d"] == 9000.0 and back["d"] != 1.0
    assert type(back["xs"][0]) is float


def test_tables_arrow_cannot_type_travel_cell_by_cell():
    frame = pd.DataFrame({"mixed": [1, "x", 2.5], "lists": [[1, 2], [3], []], "n": [1, 2, 3]},
                         index=pd.Index(["r1", "r2", "r3"], name="rid"))
    back = _round_trip(frame)
    assert back["mixed"].tolist() == [1, "x", 2.5]
    assert back["lists"].tolist() == [[1, 2], [3], []]
    assert back["n"].tolist() == [1, 2, 3] and back["n"].dtype == np.int64
    assert back.index.name == "rid" and list(back.index) == ["r1", "r2", "r3"]
    series = _round_trip(pd.Series([1, "two", None], name="s"))
    assert series.tolist() == [1, "two", None] and series.name == "s"


def test_typed_tables_keep_their_dtypes():
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-05-03T00:00Z", "2024-05-03T01:00Z"]),
                          "x": [0.5, 1.5]})
    back = _round_trip(frame)
    pd.testing.assert_frame_equal(back, frame)


def test_a_malformed_frame_is_refused():
    frame = wire.encode([1, 2, 3], lambda v: 0)
    with pytest.raises(wire.WireError):
        wire.decode(frame[:-3] + b"\xff", None, None)
    with pytest.raises(wire.WireError):
        wire.decode(b"\x00\x00\x00\x10{}", None, None)
