"""Packing one station reading into a compact binary frame, and decoding it with clear errors.

A radio link such as LoRaWAN carries a few bytes, not JSON: in AS923 at data rate DR2 with
the 400 ms dwell-time limit the largest application payload is **11 bytes** (LoRa Alliance,
*RP002-1.0.x LoRaWAN Regional Parameters*, AS923 maximum payload size with
``UplinkDwellTime = 1``). So a station packs its reading with :mod:`struct` into fixed-point
integers and appends a checksum; the gateway checks the frame before it trusts a single value.

Full frame, version 1 (big-endian, ``struct`` format ``">BHIhHHHHBH"``, 20 bytes)
-----------------------------------------------------------------------------------

======  =====  ======  ====================  ==================  ===========  ============
offset  bytes  type    field                 unit (resolution)   valid range  missing
======  =====  ======  ====================  ==================  ===========  ============
0       1      uint8   version = 1
1       2      uint16  ``station_id``                            0...65535    (required)
3       4      uint32  ``timestamp``         s since 1970 UTC    0...2^32-1   (required)
7       2      int16   ``temperature_c``     0.01 °C             -40...85     -32768
9       2      uint16  ``humidity_pct``      0.01 %RH            0...100      65535
11      2      uint16  ``pm25_ugm3``         0.1 µg/m³           0...1000     65535
13      2      uint16  ``noise_dba``         0.1 dB(A)           0...150      65535
15      2      uint16  ``people_count``      1 person            0...65534    65535
17      1      uint8   ``flags``             bit field           bits 0-2     (none)
18      2      uint16  CRC-16/CCITT-FALSE of bytes 0...17
======  =====  ======  ====================  ==================  ===========  ============

Flags: bit 0 ``battery_low``, bit 1 ``sensor_fault``, bit 2 ``clock_unsynced``; bits 3-7 are
reserved and must be 0. A missing measurement (``None`` or NaN) is sent as the *sentinel*
in the last column, a raw value that no valid measurement can take; decoding turns it back
into ``None``. Any other raw value outside the valid range is an *impossible value* and the
frame is rejected.

The 20-byte frame does **not** fit DR2 with dwell time (11 bytes). The compact variant,
version 2, sends only the fields named in a one-byte *field mask*:
``version (1) | mask (1) | the chosen fields in the order above | CRC (2)``, so 7 bytes are
left for fields under the 11-byte limit, e.g. temperature + humidity + PM2.5 (6 bytes, 10 in
all). The network already knows which device sent an uplink (its DevAddr) and when it
arrived, so ``station_id`` and ``timestamp`` are the natural fields to drop.

Checksum: CRC-16/CCITT-FALSE (called CRC-16/IBM-3740 in Greg Cook's *Catalogue of
parametrised CRC algorithms*, https://reveng.sourceforge.io/crc-catalogue/16.htm): width 16,
poly 0x1021, init 0xFFFF, not reflected, xorout 0, check value ``crc("123456789") = 0x29B1``.
Python's :func:`binascii.crc_hqx` computes the same polynomial with the initial value you
pass (0 gives CRC-16/XMODEM, check 0x31C3; 0xFFFF gives CCITT-FALSE). A 16-bit CRC detects
every error burst of at most 16 bits, so every single corrupted byte of a frame is caught.

Examples
--------
>>> frame = pack_reading({"station_id": 7, "timestamp": 1_780_000_000, "temperature_c": 21.37,
...                       "humidity_pct": 55.2, "pm25_ugm3": 12.3, "noise_dba": 48.5,
...                       "people_count": 14})
>>> len(frame)
20
>>> unpack_reading(frame)["temperature_c"]
21.37
>>> small = pack_compact({"temperature_c": 21.37, "humidity_pct": 55.2, "pm25_ugm3": 12.3},
...                      fields=["temperature_c", "humidity_pct", "pm25_ugm3"])
>>> len(small)
10
"""

from __future__ import annotations

import binascii
import datetime as _dt
import math
import numbers
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "AS923_DR2_DWELL_MAX_PAYLOAD",
    "FIELDS",
    "FLAG_BITS",
    "FULL_FRAME_SIZE",
    "FrameError",
    "crc16_ccitt_false",
    "frame_size",
    "pack_compact",
    "pack_reading",
    "unpack_reading",
]

VERSION_FULL = 1
VERSION_COMPACT = 2
AS923_DR2_DWELL_MAX_PAYLOAD = 11  # bytes; RP002 Regional Parameters, AS923, UplinkDwellTime = 1


@dataclass(frozen=True)
class _Field:
    name: str
    fmt: str  # struct code
    divisor: int  # physical value = raw / divisor (1, 10 or 100: the resolution is 1/divisor)
    low: float  # valid physical range (inclusive)
    high: float
    sentinel: int | None  # raw value meaning "missing"; None = field is required
    unit: str
    integer: bool = False  # the physical value must be a whole number

    @property
    def size(self) -> int:
        return struct.calcsize(">" + self.fmt)

    @property
    def resolution(self) -> float:
        return 1 / self.divisor

    def raw_range(self) -> tuple[int, int]:
        return round(self.low * self.divisor), round(self.high * self.divisor)


# Ranges: a typical outdoor station (e.g. a -40...85 °C temperature/humidity sensor, an
# optical PM sensor reading up to 1000 µg/m³, a sound level meter up to 150 dB).
_FIELD_LIST = (
    _Field("station_id", "H", 1, 0, 65535, None, "id", integer=True),
    _Field("timestamp", "I", 1, 0, 2**32 - 1, None, "s since 1970-01-01 UTC", integer=True),
    _Field("temperature_c", "h", 100, -40.0, 85.0, -32768, "°C"),
    _Field("humidity_pct", "H", 100, 0.0, 100.0, 0xFFFF, "%RH"),
    _Field("pm25_ugm3", "H", 10, 0.0, 1000.0, 0xFFFF, "µg/m³"),
    _Field("noise_dba", "H", 10, 0.0, 150.0, 0xFFFF, "dB(A)"),
    _Field("people_count", "H", 1, 0, 65534, 0xFFFF, "people", integer=True),
)
FIELDS: tuple[str, ...] = tuple(f.name for f in _FIELD_LIST) + ("flags",)
_BY_NAME = {f.name: f for f in _FIELD_LIST}

FLAG_BITS: dict[str, int] = {"battery_low": 0, "sensor_fault": 1, "clock_unsynced": 2}
_FLAG_MASK = sum(1 << b for b in FLAG_BITS.values())

_FIELDS_FMT = "".join(f.fmt for f in _FIELD_LIST) + "B"  # every field, flags last
_FULL_BODY = struct.Struct(">B" + _FIELDS_FMT)
_CRC = struct.Struct(">H")
FULL_FRAME_SIZE = _FULL_BODY.size + _CRC.size  # 20

# Compact mask: bit i = FIELDS[i] is present (station_id is bit 0, flags is bit 7).
_MASK_BIT = {name: i for i, name in enumerate(FIELDS)}


class FrameError(ValueError):
    """A byte string that is not a valid frame. ``reason`` names the check that failed.

    Reasons: ``"not_bytes"``, ``"empty"``, ``"truncated"``, ``"too_long"``,
    ``"unknown_version"``, ``"bad_crc"``, ``"impossible_value"``. A gateway can count
    rejected frames by ``reason`` and dead-letter them.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------- CRC


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0) of ``data``.

    The standard library computes it: ``binascii.crc_hqx`` with the initial value 0xFFFF.

    Examples
    --------
    >>> hex(crc16_ccitt_false(b"123456789"))   # the catalogue's check value
    '0x29b1'
    """
    return binascii.crc_hqx(data, 0xFFFF)


# --------------------------------------------------------------------------- packing


def _encode_field(field: _Field, value) -> int:
    """Physical value -> raw integer, with errors that name the field, its range and step."""
    if field.integer:
        allowed = f"a whole number {field.low:g}...{field.high:g}"
        allowed_ja = f"{field.low:g}...{field.high:g} の整数"
    else:
        allowed = f"{field.low:g}...{field.high:g} {field.unit} in steps of {field.resolution:g}"
        allowed_ja = f"{field.low:g}...{field.high:g} {field.unit}、{field.resolution:g} 刻み"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if field.sentinel is None:
            raise ValueError(
                f"{field.name} is required (allowed: {allowed}); got {value!r}. "
                f"/ {field.name} は必須です（許容: {allowed_ja}）。値 {value!r} が渡されました。"
            )
        return field.sentinel
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{field.name} must be a number ({allowed}) or None for missing; got {value!r}. "
            f"/ {field.name} は数値（{allowed_ja}）か、欠測なら None にしてください。"
            f"値 {value!r} が渡されました。"
        )
    value = float(value) if not isinstance(value, numbers.Integral) else int(value)
    if isinstance(value, float) and math.isnan(value):  # e.g. numpy.nan as float64
        return _encode_field(field, None)
    if isinstance(value, float) and math.isinf(value):
        raise ValueError(
            f"{field.name} = {value!r} is out of range: allowed {allowed}. "
            f"/ {field.name} = {value!r} は範囲外です。許容: {allowed_ja}。"
        )
    if field.integer and value != int(value):
        raise ValueError(
            f"{field.name} must be {allowed}; got {value!r}. "
            f"/ {field.name} は {allowed_ja}にしてください。値 {value!r} が渡されました。"
        )
    if not field.low <= value <= field.high:
        raise ValueError(
            f"{field.name} = {value!r} is out of range: allowed {allowed}. "
            f"/ {field.name} = {value!r} は範囲外です。許容: {allowed_ja}。"
        )
    return int(value) if field.integer else round(value * field.divisor)


def _timestamp_seconds(value):
    """Accept an aware datetime (e.g. a pandas Timestamp) as well as epoch seconds."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise ValueError(
                "timestamp is a naive datetime: give it a time zone (e.g. tz=UTC) or pass epoch "
                "seconds. / timestamp にタイムゾーンがありません。tz を付けるか UNIX 秒で渡してください。"
            )
        seconds = value.timestamp()
        return int(seconds) if seconds == int(seconds) else seconds
    return value


def _encode_flags(flags) -> int:
    if flags is None:
        return 0
    if isinstance(flags, numbers.Integral) and not isinstance(flags, bool):
        if flags & ~_FLAG_MASK or flags < 0:
            raise ValueError(
                f"flags = {flags!r} sets reserved bits: allowed bits {sorted(FLAG_BITS.values())} "
                f"({', '.join(FLAG_BITS)}). / flags = {flags!r} は予約ビットを含みます。"
                f"使えるビットは {sorted(FLAG_BITS.values())} です。"
            )
        return int(flags)
    if isinstance(flags, str) or not isinstance(flags, Iterable):
        raise ValueError(
            f"flags must be a list of names from {list(FLAG_BITS)} (or an int bit field); got "
            f"{flags!r}. / flags は {list(FLAG_BITS)} の名前のリスト（または整数）にしてください。"
        )
    bits = 0
    for name in flags:
        if name not in FLAG_BITS:
            raise ValueError(
                f"Unknown flag {name!r}: choose from {list(FLAG_BITS)}. "
                f"/ 不明なフラグ {name!r} です。{list(FLAG_BITS)} から選んでください。"
            )
        bits |= 1 << FLAG_BITS[name]
    return bits


def _encode_reading(reading: Mapping, fields: tuple[str, ...]) -> list[int]:
    if not isinstance(reading, Mapping):
        raise ValueError(
            f"reading must be a dict of field -> value; got {type(reading).__name__}. "
            f"/ reading は「項目名 -> 値」の dict にしてください。"
        )
    unknown = set(reading) - set(FIELDS)
    if unknown:
        raise ValueError(
            f"Unknown field(s) {sorted(map(str, unknown))}: the frame carries {list(FIELDS)}. "
            f"/ 不明な項目 {sorted(map(str, unknown))} があります。使える項目は {list(FIELDS)} です。"
        )
    raw = []
    for name in fields:
        if name == "flags":
            raw.append(_encode_flags(reading.get("flags")))
            continue
        value = reading.get(name)
        if name == "timestamp":
            value = _timestamp_seconds(value)
        raw.append(_encode_field(_BY_NAME[name], value))
    return raw


def pack_reading(reading: Mapping) -> bytes:
    """Pack one station reading into a 20-byte version-1 frame (layout in the module docstring).

    Parameters
    ----------
    reading : dict
        Keys from :data:`FIELDS`. ``station_id`` and ``timestamp`` (epoch seconds or an aware
        datetime) are required; a measurement that is absent, ``None`` or NaN is sent as
        missing; ``flags`` is a list of names from :data:`FLAG_BITS` (or an int bit field).
        Values are rounded to the field's resolution (0.01 °C, 0.01 %, 0.1 µg/m³, 0.1 dB).

    Returns
    -------
    bytes
        ``FULL_FRAME_SIZE`` (20) bytes, CRC last.

    Raises
    ------
    ValueError
        A field is unknown, required and missing, not a number, or out of its range; the
        message names the field and its allowed range and resolution.
    """
    raw = _encode_reading(reading, FIELDS)
    body = _FULL_BODY.pack(VERSION_FULL, *raw)
    return body + _CRC.pack(crc16_ccitt_false(body))


def _check_field_names(fields) -> tuple[str, ...]:
    if isinstance(fields, str) or not isinstance(fields, Iterable):
        raise ValueError(
            f"fields must be a list of field names from {list(FIELDS)}; got {fields!r}. "
            f"/ fields は {list(FIELDS)} の項目名のリストにしてください。"
        )
    chosen = set(fields)
    unknown = chosen - set(FIELDS)
    if unknown:
        raise ValueError(
            f"Unknown field(s) {sorted(map(str, unknown))}: choose from {list(FIELDS)}. "
            f"/ 不明な項目 {sorted(map(str, unknown))} です。{list(FIELDS)} から選んでください。"
        )
    if not chosen:
        raise ValueError("fields must name at least one field. / fields に項目を 1 つ以上指定してください。")
    return tuple(name for name in FIELDS if name in chosen)  # always in layout order


def _field_size(name: str) -> int:
    return 1 if name == "flags" else _BY_NAME[name].size


def frame_size(fields: Iterable[str] | None = None) -> int:
    """Size in bytes of a full frame (``fields=None``, 20) or of a compact frame with ``fields``.

    Examples
    --------
    >>> frame_size(), frame_size(["temperature_c", "humidity_pct", "pm25_ugm3"])
    (20, 10)
    """
    if fields is None:
        return FULL_FRAME_SIZE
    names = _check_field_names(fields)
    return 2 + sum(_field_size(n) for n in names) + _CRC.size


def pack_compact(
    reading: Mapping, fields: Iterable[str], max_bytes: int | None = AS923_DR2_DWELL_MAX_PAYLOAD
) -> bytes:
    """Pack only ``fields`` of a reading into a version-2 frame with a field mask.

    Layout: ``version = 2 (1) | mask (1) | fields in layout order | CRC-16 (2)``, where bit
    ``i`` of the mask is set when ``FIELDS[i]`` is present. Missing values use the same
    sentinels as the full frame; ``station_id`` and ``timestamp``, when chosen, are required.

    Parameters
    ----------
    reading : dict
        As for :func:`pack_reading`; keys not in ``fields`` are ignored (but must be known).
    fields : list of str
        Names from :data:`FIELDS` to send.
    max_bytes : int or None, default 11
        Refuse to build a frame larger than this (AS923 DR2 with dwell time: 11 bytes).
        ``None`` for no limit.

    Raises
    ------
    ValueError
        As :func:`pack_reading`, or when the frame would exceed ``max_bytes``.
    """
    names = _check_field_names(fields)
    size = frame_size(names)
    if max_bytes is not None and size > max_bytes:
        sizes = ", ".join(f"{n} {_field_size(n)} B" for n in names)
        raise ValueError(
            f"A compact frame with {sizes} (+4 B version, mask, CRC) is {size} bytes, over "
            f"max_bytes = {max_bytes}: drop fields. / 項目 {sizes}（+ バージョン・マスク・CRC の 4 B）"
            f"で {size} バイトになり、上限 {max_bytes} バイトを超えます。項目を減らしてください。"
        )
    raw = _encode_reading(reading, names)
    mask = sum(1 << _MASK_BIT[n] for n in names)
    body = struct.pack(">BB" + "".join("B" if n == "flags" else _BY_NAME[n].fmt for n in names),
                       VERSION_COMPACT, mask, *raw)
    return body + _CRC.pack(crc16_ccitt_false(body))


# --------------------------------------------------------------------------- unpacking


def _length_error(expected: int, got: int, what: str, what_ja: str) -> FrameError:
    if got < expected:
        return FrameError(
            "truncated",
            f"Truncated {what}: expected {expected} bytes, got {got}. "
            f"/ {what_ja}が途中で切れています。{expected} バイトのはずが {got} バイトです。",
        )
    return FrameError(
        "too_long",
        f"{what} too long: expected {expected} bytes, got {got}. "
        f"/ {what_ja}が長すぎます。{expected} バイトのはずが {got} バイトです。",
    )


def _decode_values(names: tuple[str, ...], raw: tuple[int, ...]) -> dict:
    reading = {}
    for name, value in zip(names, raw, strict=True):
        if name == "flags":
            if value & ~_FLAG_MASK:
                raise FrameError(
                    "impossible_value",
                    f"flags byte 0x{value:02x} sets reserved bits (only bits "
                    f"{sorted(FLAG_BITS.values())} are defined). / flags 0x{value:02x} が予約ビットを"
                    f"含んでいます（定義済みはビット {sorted(FLAG_BITS.values())} のみ）。",
                )
            reading["flags"] = tuple(n for n, b in FLAG_BITS.items() if value >> b & 1)
            continue
        field = _BY_NAME[name]
        if field.sentinel is not None and value == field.sentinel:
            reading[name] = None
            continue
        low, high = field.raw_range()
        if not low <= value <= high:
            raise FrameError(
                "impossible_value",
                f"{name} raw value {value} is impossible: allowed {low}...{high} "
                f"(= {field.low:g}...{field.high:g} {field.unit}) or the missing sentinel. "
                f"/ {name} の生の値 {value} はありえません（許容 {low}...{high}、または欠測値）。",
            )
        # raw / divisor is the float nearest the decimal value (2137 / 100 -> 21.37)
        reading[name] = value if field.integer else value / field.divisor
    return reading


def unpack_reading(frame: bytes) -> dict:
    """Decode a version-1 (full) or version-2 (compact) frame into a reading dict.

    Checks, in order: bytes at all, not empty, known version, exact length (expected vs got),
    CRC, then every value against its valid range. Missing measurements come back as
    ``None``; ``flags`` as a tuple of names; fields absent from a compact frame are absent
    from the dict.

    Raises
    ------
    FrameError
        For anything that is not a valid frame, with a bilingual message and a ``reason``.
        Nothing else is raised, so a gateway needs to catch only this.

    Examples
    --------
    >>> unpack_reading(b"")
    Traceback (most recent call last):
    ...
    sscity.sensing.payload.FrameError: Empty frame: no bytes received. / 空のフレームです（0 バイト）。
    """
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise FrameError(
            "not_bytes",
            f"A frame must be bytes; got {type(frame).__name__}. "
            f"/ フレームは bytes でなければなりません（{type(frame).__name__} が渡されました）。",
        )
    frame = bytes(frame)
    if not frame:
        raise FrameError("empty", "Empty frame: no bytes received. / 空のフレームです（0 バイト）。")
    version = frame[0]
    if version == VERSION_FULL:
        if len(frame) != FULL_FRAME_SIZE:
            raise _length_error(FULL_FRAME_SIZE, len(frame), "frame (version 1)", "フレーム（バージョン 1）")
        names = FIELDS
        fmt = _FIELDS_FMT
        offset = 1
    elif version == VERSION_COMPACT:
        if len(frame) < 2:
            raise FrameError(
                "truncated",
                f"Truncated compact frame (version 2): expected at least {2 + _CRC.size + 1} bytes, "
                f"got {len(frame)}. / 圧縮フレーム（バージョン 2）が途中で切れています。"
                f"{2 + _CRC.size + 1} バイト以上のはずが {len(frame)} バイトです。",
            )
        mask = frame[1]
        names = tuple(n for n in FIELDS if mask >> _MASK_BIT[n] & 1)
        if not names:
            raise FrameError(
                "impossible_value",
                "Compact frame with an empty field mask (0x00). "
                "/ フィールドマスクが空（0x00）の圧縮フレームです。",
            )
        expected = frame_size(names)
        if len(frame) != expected:
            raise _length_error(
                expected, len(frame), f"compact frame (version 2, mask 0x{mask:02x})",
                f"圧縮フレーム（バージョン 2、マスク 0x{mask:02x}）",
            )
        fmt = "".join("B" if n == "flags" else _BY_NAME[n].fmt for n in names)
        offset = 2
    else:
        raise FrameError(
            "unknown_version",
            f"Unknown frame version {version} (this decoder reads {VERSION_FULL} and "
            f"{VERSION_COMPACT}); the frame may be corrupt. / 不明なフレームバージョン {version} です"
            f"（対応は {VERSION_FULL} と {VERSION_COMPACT}）。フレームが壊れている可能性があります。",
        )
    body, (received_crc,) = frame[:-2], _CRC.unpack(frame[-2:])
    computed = crc16_ccitt_false(body)
    if received_crc != computed:
        raise FrameError(
            "bad_crc",
            f"Bad CRC: frame says 0x{received_crc:04x}, bytes give 0x{computed:04x}; the frame "
            f"was corrupted. / CRC 不一致です（フレーム 0x{received_crc:04x}、計算値 "
            f"0x{computed:04x}）。フレームが壊れています。",
        )
    raw = struct.unpack(">" + fmt, body[offset:])
    return _decode_values(names, raw)
