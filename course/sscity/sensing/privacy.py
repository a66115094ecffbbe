"""Why hashed MAC addresses are not anonymous, and how to count people without identifiers.

Wi-Fi and Bluetooth people counters see the 48-bit MAC address of each device. A naive
system "anonymises" it as ``SHA-256(address)`` and stores the digest. But a MAC address is
not random: its first 3 bytes are the vendor's *Organisationally Unique Identifier* (OUI),
public in the IEEE Registration Authority's list, so under one known OUI only
``2**24 = 16,777,216`` addresses remain. Hashing each of them and comparing recovers the
address (:func:`reverse_hashed_mac`); on an ordinary laptop core that takes seconds per
vendor (:func:`enumeration_rate` measures it). A *fixed* salt stored next to the data does not
help: whoever has the data has the salt, and the enumeration is the same.

What to do instead:

- count on the device and send counts only (:func:`count_unique_devices`);
- if devices must be linked over a short time, use a keyed pseudonym whose key changes every
  day and never leaves the device (:func:`rotating_pseudonym`, HMAC-SHA256, RFC 2104): without
  the key the enumeration above finds nothing. With the key it would, so the key must stay
  secret, and forgetting old day keys makes old pseudonyms unlinkable;
- aggregate counts to mesh cells and suppress small cells (``sscity.sensing.mesh``).

Note that modern phones send *randomised*, locally administered addresses while scanning
(IEEE 802: bit 1 of the first byte set, :func:`is_locally_administered`), so raw counts of
distinct addresses over-count devices; that is a measurement problem, not a privacy fix.

Examples
--------
>>> digest = hash_mac("00:1a:2b:00:12:34")
>>> reverse_hashed_mac(digest, ["00:1a:2b"], device_bits=16)   # 65,536 guesses
'00:1a:2b:00:12:34'
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import math
import numbers
import re
import sys
import time
from collections.abc import Iterable

__all__ = [
    "count_unique_devices",
    "enumeration_rate",
    "format_mac",
    "hash_mac",
    "is_locally_administered",
    "normalize_mac",
    "reverse_hashed_mac",
    "rotating_pseudonym",
]

# "aa:bb:cc:dd:ee:ff", "aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff" (Cisco) or "aabbccddeeff"
_MAC_PATTERNS = (
    re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}"),
    re.compile(r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}"),
    re.compile(r"[0-9a-f]{12}"),
)
_OUI_PATTERNS = (
    re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}\1[0-9a-f]{2}"),
    re.compile(r"[0-9a-f]{6}"),
)


def _to_bytes(value, n_bytes: int, patterns, what: str, what_ja: str, example: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        if len(value) != n_bytes:
            raise ValueError(
                f"A {what} given as bytes must have {n_bytes} bytes; got {len(value)}. "
                f"/ bytes で渡す {what_ja} は {n_bytes} バイトです（{len(value)} バイトが渡されました）。"
            )
        return bytes(value)
    if not isinstance(value, str):
        raise ValueError(
            f"A {what} must be a string like {example!r} or {n_bytes} bytes; got "
            f"{type(value).__name__}. / {what_ja} は {example!r} のような文字列か {n_bytes} バイトの "
            f"bytes にしてください（{type(value).__name__} が渡されました）。"
        )
    text = value.strip().lower()
    if not any(p.fullmatch(text) for p in patterns):
        raise ValueError(
            f"Malformed {what} {value!r}: write {n_bytes} hex bytes like {example!r} "
            f"(':' or '-' between bytes, or none). / {what_ja} {value!r} の形式が正しくありません。"
            f"{example!r} のように 16 進 {n_bytes} バイトで書いてください"
            f"（区切りは ':' か '-'、またはなし）。"
        )
    return bytes.fromhex(re.sub(r"[^0-9a-f]", "", text))


def normalize_mac(mac: str | bytes) -> bytes:
    """The 6 bytes of a MAC address written as ``aa:bb:cc:dd:ee:ff``, ``aa-bb-...``,
    ``aabb.ccdd.eeff`` or ``aabbccddeeff`` (any case), or given as 6 bytes.

    Examples
    --------
    >>> normalize_mac("00-1A-2B-3C-4D-5E").hex()
    '001a2b3c4d5e'
    """
    return _to_bytes(mac, 6, _MAC_PATTERNS, "MAC address", "MAC アドレス", "00:1a:2b:3c:4d:5e")


def format_mac(mac: str | bytes) -> str:
    """Canonical lower-case colon form, ``'00:1a:2b:3c:4d:5e'``."""
    return normalize_mac(mac).hex(":")


def is_locally_administered(mac: str | bytes) -> bool:
    """True for a locally administered (e.g. randomised) address: bit 1 of the first byte (IEEE 802)."""
    return bool(normalize_mac(mac)[0] & 0x02)


def _salt_bytes(salt) -> bytes:
    if isinstance(salt, str):
        return salt.encode("utf-8")
    if isinstance(salt, (bytes, bytearray)):
        return bytes(salt)
    raise ValueError(
        f"salt must be bytes or str; got {type(salt).__name__}. "
        f"/ salt は bytes か str にしてください（{type(salt).__name__} が渡されました）。"
    )


def hash_mac(mac: str | bytes, salt: bytes | str = b"") -> str:
    """SHA-256 hex digest of ``salt + the 6 address bytes``: the naive "anonymisation".

    Shown so that :func:`reverse_hashed_mac` can undo it; do not use it to protect anyone.

    Examples
    --------
    >>> hash_mac("00:1a:2b:3c:4d:5e")[:16]
    'fdcef14455c044d0'
    """
    return hashlib.sha256(_salt_bytes(salt) + normalize_mac(mac)).hexdigest()


def _digest_bytes(digest) -> bytes:
    if isinstance(digest, (bytes, bytearray)) and len(digest) == 32:
        return bytes(digest)
    if isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest.strip()):
        return bytes.fromhex(digest.strip())
    raise ValueError(
        f"digest must be a SHA-256 hex string of 64 characters (or 32 bytes); got {digest!r}. "
        f"/ digest は 64 文字の SHA-256 16 進文字列（または 32 バイト）にしてください。"
    )


def _oui_list(oui_prefixes) -> list[bytes]:
    if isinstance(oui_prefixes, (str, bytes, bytearray)):
        oui_prefixes = [oui_prefixes]
    if not isinstance(oui_prefixes, Iterable):
        raise ValueError(
            f"oui_prefixes must be a list of vendor prefixes like '00:1a:2b'; got {oui_prefixes!r}. "
            f"/ oui_prefixes は '00:1a:2b' のようなベンダー接頭辞のリストにしてください。"
        )
    ouis = [
        _to_bytes(o, 3, _OUI_PATTERNS, "OUI (vendor prefix)", "OUI（ベンダー接頭辞）", "00:1a:2b")
        for o in oui_prefixes
    ]
    if not ouis:
        raise ValueError("oui_prefixes is empty. / oui_prefixes が空です。")
    return ouis


def _check_device_bits(device_bits) -> int:
    if (
        isinstance(device_bits, bool)
        or not isinstance(device_bits, numbers.Integral)
        or not 1 <= device_bits <= 24
    ):
        raise ValueError(
            f"device_bits must be a whole number 1...24 (24 = every address under an OUI); got "
            f"{device_bits!r}. / device_bits は 1〜24 の整数にしてください（24 で OUI 配下の全アドレス）。"
        )
    return int(device_bits)


def _search_prefix(prefix: bytes, target: bytes, device_bits: int, limit: int | None = None):
    """Hash ``prefix + 3 device bytes`` for device numbers 0...2**device_bits - 1.

    Returns ``(device_number or None, hashes computed)``. The two low bytes are prebuilt
    once so the inner loop is one concatenation, one SHA-256 and one comparison.
    """
    sha256 = hashlib.sha256
    n_low = min(1 << device_bits, 1 << 16)
    n_high = (1 << device_bits) // n_low
    lows = [i.to_bytes(2, "big") for i in range(n_low)]
    done = 0
    for high in range(n_high):
        head = prefix + bytes((high,))
        if limit is not None:
            lows = lows[: max(0, min(n_low, limit - done))]
            if not lows:
                break
        for low, tail in enumerate(lows):
            if sha256(head + tail).digest() == target:
                return (high << 16) | low, done + low + 1
        done += len(lows)
    return None, done


def reverse_hashed_mac(
    digest: str | bytes,
    oui_prefixes,
    salt: bytes | str = b"",
    progress: bool = False,
    device_bits: int = 24,
) -> str | None:
    """Recover the MAC address behind ``hash_mac(mac, salt)`` by enumerating vendor prefixes.

    For each OUI, hashes ``salt + OUI + device part`` for every device part
    ``0 ... 2**device_bits - 1`` and compares with ``digest``.

    Parameters
    ----------
    digest : str or bytes
        The SHA-256 hex digest (64 characters) or its 32 bytes.
    oui_prefixes : str or list of str/bytes
        Vendor prefixes (3 bytes, e.g. ``"00:1a:2b"``) to try, most likely first.
    salt : bytes or str, default b""
        A salt known to the attacker (a fixed salt shipped with the data or firmware).
    progress : bool, default False
        Print one line per OUI (time taken) to stderr.
    device_bits : int, default 24
        Size of the search under each OUI: 24 tries every address (16,777,216 hashes);
        fewer bits try only device parts below ``2**device_bits`` (tests use 16).

    Returns
    -------
    str or None
        The address as ``'aa:bb:cc:dd:ee:ff'``, or None when it is not in the search space.

    Examples
    --------
    >>> reverse_hashed_mac(hash_mac("00:1a:2b:00:00:2a"), "00:1a:2b", device_bits=8)
    '00:1a:2b:00:00:2a'
    """
    target = _digest_bytes(digest)
    salt_b = _salt_bytes(salt)
    bits = _check_device_bits(device_bits)
    for oui in _oui_list(oui_prefixes):
        start = time.perf_counter()
        device, n_hashes = _search_prefix(salt_b + oui, target, bits)
        if progress:
            print(
                f"OUI {oui.hex(':')}: {n_hashes:,} hashes in {time.perf_counter() - start:.2f} s"
                + (" - found" if device is not None else ""),
                file=sys.stderr,
            )
        if device is not None:
            return (oui + device.to_bytes(3, "big")).hex(":")
    return None


def enumeration_rate(sample: int = 200_000) -> float:
    """Measured SHA-256 guesses per second of :func:`reverse_hashed_mac`'s inner loop here.

    Runs ``sample`` guesses against a digest that is never found. Seconds to exhaust one
    OUI: ``2**24 / enumeration_rate()``.

    Examples
    --------
    >>> rate = enumeration_rate(50_000)          # doctest: +SKIP
    >>> print(f"{rate:,.0f} hashes/s, {2**24 / rate:.1f} s per OUI")   # doctest: +SKIP
    2,400,000 hashes/s, 7.0 s per OUI
    """
    if isinstance(sample, bool) or not isinstance(sample, numbers.Integral) or not 1 <= sample <= 1 << 24:
        raise ValueError(
            f"sample must be a whole number 1...16,777,216; got {sample!r}. "
            f"/ sample は 1〜16,777,216 の整数にしてください。"
        )
    never = bytes(32)  # no SHA-256 input among these has an all-zero digest
    start = time.perf_counter()
    _, n_hashes = _search_prefix(b"\x00\x00\x00", never, 24, limit=int(sample))
    return n_hashes / (time.perf_counter() - start)


def _day_key(day, secret: bytes) -> bytes:
    if isinstance(day, _dt.datetime):
        day = day.date()
    elif isinstance(day, str):
        try:
            day = _dt.date.fromisoformat(day.strip())
        except ValueError:
            day = None
    if not isinstance(day, _dt.date):
        raise ValueError(
            "day must be a date, a datetime or an ISO date string like '2026-04-01'. "
            "/ day は date、datetime、または '2026-04-01' のような ISO 形式の文字列にしてください。"
        )
    # A per-day key from the secret with HMAC as the pseudo-random function (a counter-less
    # form of NIST SP 800-108's KDF): knowing one day's key says nothing about another's.
    return hmac.new(secret, b"sscity-pseudonym-day:" + day.isoformat().encode(), hashlib.sha256).digest()


def rotating_pseudonym(mac: str | bytes, day, secret: bytes) -> str:
    """HMAC-SHA256 pseudonym of a MAC address under a per-day key derived from ``secret``.

    The same device gets the same pseudonym within a day (so a device seen twice is counted
    once) and an unrelated one the next day. Without ``secret`` the enumeration of
    :func:`reverse_hashed_mac` cannot test guesses, so it finds nothing.

    Parameters
    ----------
    mac : str or bytes
    day : datetime.date, datetime.datetime or ISO date string
    secret : bytes
        At least 16 random bytes (e.g. ``secrets.token_bytes(32)``) kept on the device.

    Examples
    --------
    >>> secret = bytes(range(32))
    >>> a = rotating_pseudonym("00:1a:2b:3c:4d:5e", "2026-04-01", secret)
    >>> a == rotating_pseudonym("00-1A-2B-3C-4D-5E", "2026-04-01", secret)
    True
    >>> a == rotating_pseudonym("00:1a:2b:3c:4d:5e", "2026-04-02", secret)
    False
    """
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
        raise ValueError(
            "secret must be at least 16 random bytes (e.g. secrets.token_bytes(32)); a short "
            "or guessable secret can itself be enumerated. / secret は 16 バイト以上の乱数にして"
            "ください（例: secrets.token_bytes(32)）。短い秘密鍵は総当たりで破られます。"
        )
    key = _day_key(day, bytes(secret))
    return hmac.new(key, normalize_mac(mac), hashlib.sha256).hexdigest()


def _window_seconds(window) -> float:
    if isinstance(window, _dt.timedelta):
        window = window.total_seconds()
    if isinstance(window, bool) or not isinstance(window, numbers.Real) or not (
        math.isfinite(window) and window > 0
    ):
        raise ValueError(
            f"window must be a positive number of seconds or a timedelta; got {window!r}. "
            f"/ window は正の秒数か timedelta にしてください（{window!r} が渡されました）。"
        )
    return float(window)


def count_unique_devices(sightings: Iterable, window) -> dict[float, int]:
    """Distinct devices per time window, and nothing else: no identifier leaves this function.

    Parameters
    ----------
    sightings : iterable of (timestamp, mac)
        ``timestamp`` in epoch seconds (or an aware datetime), ``mac`` in any form that
        :func:`normalize_mac` reads (or an opaque pseudonym string from
        :func:`rotating_pseudonym`). The addresses are held in memory for one call only.
    window : float or datetime.timedelta
        Window length in seconds; windows are aligned to multiples of it since the epoch
        (600 -> 10:00, 10:10, ...).

    Returns
    -------
    dict of int to int
        Window start (epoch seconds) -> number of distinct devices seen, ascending.

    Examples
    --------
    >>> count_unique_devices([(0, "00:1a:2b:00:00:01"), (30, "00-1A-2B-00-00-01"),
    ...                       (45, "00:1a:2b:00:00:02"), (610, "00:1a:2b:00:00:01")], 600)
    {0: 2, 600: 1}
    """
    width = _window_seconds(window)
    seen: dict[int, set] = {}
    for i, item in enumerate(sightings):
        try:
            timestamp, mac = item
        except (TypeError, ValueError):
            raise ValueError(
                f"sighting {i} must be a (timestamp, mac) pair. "
                f"/ sighting {i} は (timestamp, mac) の組にしてください。"
            ) from None
        if isinstance(timestamp, _dt.datetime):
            if timestamp.tzinfo is None:
                raise ValueError(
                    f"sighting {i}: naive datetime; give it a time zone. "
                    f"/ sighting {i}: タイムゾーンのない datetime です。tz を付けてください。"
                )
            timestamp = timestamp.timestamp()
        if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Real) or not math.isfinite(
            timestamp
        ):
            raise ValueError(
                f"sighting {i}: timestamp must be epoch seconds; got {timestamp!r}. "
                f"/ sighting {i}: timestamp は UNIX 秒にしてください。"
            )
        # A 64-hex pseudonym is counted as is; anything else must be a MAC address.
        is_pseudonym = isinstance(mac, str) and re.fullmatch(r"[0-9a-f]{64}", mac) is not None
        key = mac if is_pseudonym else normalize_mac(mac)
        start = math.floor(timestamp / width) * width
        start = int(start) if float(start).is_integer() else start
        seen.setdefault(start, set()).add(key)
    # Only the sizes are returned; the sets (the identifiers) are dropped with this frame.
    return {start: len(devices) for start, devices in sorted(seen.items())}
