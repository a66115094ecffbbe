"""sscity.sensing.payload: frame layout, CRC, round trips and rejection of every damaged frame.

References not written here:
- Greg Cook, "Catalogue of parametrised CRC algorithms" (CRC RevEng): CRC-16/IBM-3740 alias
  CRC-16/CCITT-FALSE, poly 0x1021, init 0xffff, refin/refout false, xorout 0, check 0x29b1,
  residue 0x0000; CRC-16/XMODEM (init 0) check 0x31c3.
- Python's ``binascii.crc_hqx`` (CRC-CCITT polynomial 0x1021 with a caller-given initial value)
  and ``struct`` for an independent packing of the documented layout.
- LoRaWAN Regional Parameters (RP002-1.0.x), AS923: DR2 with UplinkDwellTime = 1 allows an
  application payload of at most 11 bytes.
"""

from __future__ import annotations

import binascii
import datetime as dt
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sscity.sensing.payload import (
    AS923_DR2_DWELL_MAX_PAYLOAD,
    FIELDS,
    FULL_FRAME_SIZE,
    FrameError,
    crc16_ccitt_false,
    frame_size,
    pack_compact,
    pack_reading,
    unpack_reading,
)

SAMPLE = {
    "station_id": 4242,
    "timestamp": 1_780_000_000,
    "temperature_c": 21.37,
    "humidity_pct": 55.2,
    "pm25_ugm3": 12.3,
    "noise_dba": 48.5,
    "people_count": 14,
    "flags": ("battery_low",),
}
COMPACT_FIELDS = ["temperature_c", "humidity_pct", "pm25_ugm3"]


def is_japanese(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)


# --------------------------------------------------------------------------- CRC


def test_crc_check_value_from_the_catalogue():
    assert crc16_ccitt_false(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE (IBM-3740) check
    # binascii.crc_hqx is the same polynomial: init 0xFFFF is CCITT-FALSE, init 0 is XMODEM.
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1
    assert binascii.crc_hqx(b"123456789", 0) == 0x31C3  # CRC-16/XMODEM check: a different CRC


@given(st.binary(max_size=64))
def test_crc_matches_binascii(data):
    assert crc16_ccitt_false(data) == binascii.crc_hqx(data, 0xFFFF)


def test_frame_residue_is_zero():
    # Catalogue residue 0x0000: the CRC over data + its big-endian CRC is 0.
    assert crc16_ccitt_false(pack_reading(SAMPLE)) == 0


# --------------------------------------------------------------------------- layout and size


def test_frame_matches_an_independent_struct_packing():
    body = struct.pack(">BHIhHHHHB", 1, 4242, 1_780_000_000, 2137, 5520, 123, 485, 14, 0b001)
    expected = body + struct.pack(">H", binascii.crc_hqx(body, 0xFFFF))
    assert pack_reading(SAMPLE) == expected


def test_sizes_and_the_as923_dwell_limit():
    assert FULL_FRAME_SIZE == struct.calcsize(">BHIhHHHHBH") == 20 == len(pack_reading(SAMPLE))
    assert AS923_DR2_DWELL_MAX_PAYLOAD == 11
    assert FULL_FRAME_SIZE > AS923_DR2_DWELL_MAX_PAYLOAD  # the full frame does not fit DR2 + dwell
    frame = pack_compact(SAMPLE, COMPACT_FIELDS)
    assert len(frame) == frame_size(COMPACT_FIELDS) == 10 <= AS923_DR2_DWELL_MAX_PAYLOAD


def test_missing_values_use_the_documented_sentinels():
    reading = {"station_id": 1, "timestamp": 0, "temperature_c": None, "humidity_pct": math.nan}
    body = struct.pack(">BHIhHHHHB", 1, 1, 0, -32768, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0)
    frame = pack_reading(reading)
    assert frame[:-2] == body
    decoded = unpack_reading(frame)
    assert decoded == {
        "station_id": 1, "timestamp": 0, "temperature_c": None, "humidity_pct": None,
        "pm25_ugm3": None, "noise_dba": None, "people_count": None, "flags": (),
    }


# --------------------------------------------------------------------------- round trips

grid_readings = st.fixed_dictionaries(
    {
        "station_id": st.integers(0, 65535),
        "timestamp": st.integers(0, 2**32 - 1),
        "temperature_c": st.one_of(st.none(), st.integers(-4000, 8500).map(lambda r: r / 100)),
        "humidity_pct": st.one_of(st.none(), st.integers(0, 10000).map(lambda r: r / 100)),
        "pm25_ugm3": st.one_of(st.none(), st.integers(0, 10000).map(lambda r: r / 10)),
        "noise_dba": st.one_of(st.none(), st.integers(0, 1500).map(lambda r: r / 10)),
        "people_count": st.one_of(st.none(), st.integers(0, 65534)),
        "flags": st.sets(st.sampled_from(["battery_low", "sensor_fault", "clock_unsynced"])).map(
            lambda s: tuple(n for n in ("battery_low", "sensor_fault", "clock_unsynced") if n in s)
        ),
    }
)


@given(grid_readings)
def test_round_trip_is_exact_on_the_resolution_grid(reading):
    frame = pack_reading(reading)
    assert len(frame) == FULL_FRAME_SIZE
    assert unpack_reading(frame) == reading
    assert pack_reading(unpack_reading(frame)) == frame


@given(
    st.floats(-40, 85), st.floats(0, 100), st.floats(0, 1000), st.floats(0, 150),
)
def test_round_trip_error_is_at_most_half_the_resolution(temp, hum, pm, noise):
    reading = {"station_id": 3, "timestamp": 10, "temperature_c": temp, "humidity_pct": hum,
               "pm25_ugm3": pm, "noise_dba": noise}
    out = unpack_reading(pack_reading(reading))
    for name, step in [("temperature_c", 0.01), ("humidity_pct", 0.01), ("pm25_ugm3", 0.1),
                       ("noise_dba", 0.1)]:
        assert abs(out[name] - reading[name]) <= step / 2 + 1e-9


@given(grid_readings, st.sets(st.sampled_from(FIELDS), min_size=1))
def test_compact_round_trip_keeps_only_the_chosen_fields(reading, fields):
    frame = pack_compact(reading, fields, max_bytes=None)
    assert len(frame) == frame_size(fields)
    assert unpack_reading(frame) == {k: v for k, v in reading.items() if k in fields}


def test_aware_datetimes_and_integer_flags_are_accepted():
    when = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
    frame = pack_reading({"station_id": 1, "timestamp": when, "flags": 0b110})
    out = unpack_reading(frame)
    assert out["timestamp"] == int(when.timestamp())
    assert out["flags"] == ("sensor_fault", "clock_unsynced")


# --------------------------------------------------------------------------- damaged frames


def sample_frames():
    return [pack_reading(SAMPLE), pack_compact(SAMPLE, COMPACT_FIELDS)]


@pytest.mark.parametrize("frame", sample_frames(), ids=["full", "compact"])
def test_every_single_byte_corruption_is_rejected(frame):
    for position in range(len(frame)):
        for value in range(256):
            if value == frame[position]:
                continue
            damaged = bytearray(frame)
            damaged[position] = value
            with pytest.raises(FrameError):
                unpack_reading(bytes(damaged))


@pytest.mark.parametrize("frame", sample_frames(), ids=["full", "compact"])
def test_every_truncation_and_extension_is_rejected(frame):
    for length in range(len(frame)):
        with pytest.raises(FrameError) as err:
            unpack_reading(frame[:length])
        assert err.value.reason in {"empty", "truncated"}
    for extra in (b"\x00", b"\xff" * 5):
        with pytest.raises(FrameError) as err:
            unpack_reading(frame + extra)
        assert err.value.reason == "too_long"


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_random_bytes_raise_only_frame_error(data):
    try:
        reading = unpack_reading(data)
    except FrameError:
        return
    # The rare random frame that passes every check must be exactly re-encodable.
    if data[0] == 1:
        assert pack_reading(reading) == data
    else:
        assert pack_compact(reading, list(reading), max_bytes=None) == data


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack(">H", binascii.crc_hqx(body, 0xFFFF))


@pytest.mark.parametrize(
    ("data", "reason", "needle"),
    [
        (b"", "empty", "Empty frame"),
        (pack_reading(SAMPLE)[:12], "truncated", "expected 20 bytes, got 12"),
        (pack_reading(SAMPLE) + b"\x00", "too_long", "expected 20 bytes, got 21"),
        (b"\x07" + pack_reading(SAMPLE)[1:], "unknown_version", "Unknown frame version 7"),
        (pack_reading(SAMPLE)[:-1] + b"\x00", "bad_crc", "Bad CRC"),
        # humidity raw 10001 (100.01 %) with a valid CRC: impossible, not missing
        (_with_crc(struct.pack(">BHIhHHHHB", 1, 1, 0, 0, 10001, 0, 0, 0, 0)), "impossible_value",
         "humidity_pct raw value 10001"),
        # temperature raw -5000 (-50 °C) is below the sensor's range
        (_with_crc(struct.pack(">BHIhHHHHB", 1, 1, 0, -5000, 0, 0, 0, 0, 0)), "impossible_value",
         "temperature_c"),
        # a reserved flag bit
        (_with_crc(struct.pack(">BHIhHHHHB", 1, 1, 0, 0, 0, 0, 0, 0, 0x80)), "impossible_value",
         "reserved"),
        (_with_crc(b"\x02\x00"), "impossible_value", "empty field mask"),
        ("not bytes", "not_bytes", "must be bytes"),
    ],
)
def test_frame_errors_are_specific_and_bilingual(data, reason, needle):
    with pytest.raises(FrameError) as err:
        unpack_reading(data)
    assert err.value.reason == reason
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert needle in message and " / " in message and is_japanese(message)


# --------------------------------------------------------------------------- packing errors


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"temperature_c": 85.5}, ["temperature_c", "-40...85", "0.01"]),
        ({"humidity_pct": -1}, ["humidity_pct", "0...100"]),
        ({"pm25_ugm3": 1000.1}, ["pm25_ugm3", "0...1000", "0.1"]),
        ({"noise_dba": math.inf}, ["noise_dba", "0...150"]),
        ({"people_count": 65535}, ["people_count", "0...65534"]),
        ({"people_count": 2.5}, ["people_count", "whole number"]),
        ({"station_id": None}, ["station_id", "required"]),
        ({"timestamp": -1}, ["timestamp"]),
        ({"temperature_c": "21.3"}, ["temperature_c", "must be a number"]),
        ({"humidity_pct": True}, ["humidity_pct", "must be a number"]),
        ({"temprature_c": 20}, ["Unknown field", "temprature_c"]),
        ({"flags": ["low_battery"]}, ["Unknown flag", "low_battery"]),
        ({"flags": 0x08}, ["reserved"]),
        ({"timestamp": dt.datetime(2026, 4, 1)}, ["naive"]),
    ],
)
def test_pack_errors_name_the_field_and_its_range(change, needles):
    with pytest.raises(ValueError) as err:
        pack_reading({**SAMPLE, **change})
    message = str(err.value)
    assert not isinstance(err.value, FrameError)
    for needle in needles:
        assert needle in message
    assert " / " in message and is_japanese(message)


def test_compact_frame_over_the_limit_is_refused_with_sizes():
    with pytest.raises(ValueError, match=r"15 bytes, over max_bytes = 11") as err:
        pack_compact(SAMPLE, ["station_id", "timestamp", "temperature_c", "humidity_pct",
                              "flags"])
    assert is_japanese(str(err.value))
    with pytest.raises(ValueError, match="Unknown field"):
        pack_compact(SAMPLE, ["temperature"])
    with pytest.raises(ValueError, match="at least one"):
        pack_compact(SAMPLE, [])
