"""sscity.sensing.privacy: hashed MACs are reversible, keyed day pseudonyms are not, counts only.

References not written here: ``hashlib.sha256`` (FIPS 180-4) for the naive hash, HMAC built
by hand from ``hashlib`` as RFC 2104 defines it (H((K xor opad) || H((K xor ipad) || m)),
block size 64 for SHA-256) for the pseudonym, and pandas ``groupby().nunique()`` for counts.
The search space is cut to 2**16 device parts (``device_bits=16``) to keep the tests fast.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random

import pandas as pd
import pytest
from sscity.sensing.privacy import (
    count_unique_devices,
    enumeration_rate,
    format_mac,
    hash_mac,
    is_locally_administered,
    normalize_mac,
    reverse_hashed_mac,
    rotating_pseudonym,
)

SECRET = bytes(range(100, 132))


def is_japanese(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)


def rfc2104_hmac_sha256(key: bytes, message: bytes) -> bytes:
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\x00")
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key) + message).digest()
    return hashlib.sha256(bytes(k ^ 0x5C for k in key) + inner).digest()


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "text",
    ["00:1a:2b:3c:4d:5e", "00-1A-2B-3C-4D-5E", "001a.2b3c.4d5e", "001A2B3C4D5E", " 00:1a:2b:3c:4d:5e "],
)
def test_mac_forms_normalise_to_the_same_six_bytes(text):
    assert normalize_mac(text) == bytes.fromhex("001a2b3c4d5e")
    assert format_mac(text) == "00:1a:2b:3c:4d:5e"


@pytest.mark.parametrize(
    "bad",
    ["", "00:1a:2b:3c:4d", "00:1a:2b:3c:4d:5e:6f", "00:1a:2b:3c:4d:5g", "00:1a-2b:3c:4d:5e",
     "0:1a:2b:3c:4d:5e", "00 1a 2b 3c 4d 5e", b"\x00\x1a\x2b", 0x001A2B3C4D5E, None],
)
def test_malformed_mac_errors_are_bilingual(bad):
    with pytest.raises(ValueError) as err:
        hash_mac(bad)
    message = str(err.value)
    assert "MAC address" in message and " / " in message and is_japanese(message)


def test_locally_administered_bit():
    assert not is_locally_administered("00:1a:2b:3c:4d:5e")
    assert is_locally_administered("da:a1:19:00:00:01")  # 0xda has bit 1 set (randomised)


# --------------------------------------------------------------------------- naive hash


def test_hash_mac_is_sha256_of_salt_and_the_six_bytes():
    assert hash_mac("00:1a:2b:3c:4d:5e") == hashlib.sha256(bytes.fromhex("001a2b3c4d5e")).hexdigest()
    assert hash_mac("00:1a:2b:3c:4d:5e", salt=b"pepper") == hashlib.sha256(
        b"pepper" + bytes.fromhex("001a2b3c4d5e")
    ).hexdigest()
    assert hash_mac("00:1a:2b:3c:4d:5e", salt="pepper") == hash_mac("00:1a:2b:3c:4d:5e", salt=b"pepper")


@pytest.mark.parametrize("mac", ["00:1a:2b:00:00:00", "00:1a:2b:00:ff:ff", "f4:f5:d8:00:12:34"])
def test_reverse_recovers_the_exact_address(mac):
    ouis = ["3c:5a:b4", "00:1a:2b", "f4:f5:d8"]  # the right OUI is not always tried first
    assert reverse_hashed_mac(hash_mac(mac), ouis, device_bits=16) == mac


def test_reverse_accepts_upper_case_digests_and_bytes():
    digest = hash_mac("00:1a:2b:00:01:02")
    assert reverse_hashed_mac(digest.upper(), "00:1A:2B", device_bits=16) == "00:1a:2b:00:01:02"
    assert reverse_hashed_mac(bytes.fromhex(digest), [b"\x00\x1a\x2b"], device_bits=16) == "00:1a:2b:00:01:02"


def test_a_known_fixed_salt_does_not_help():
    digest = hash_mac("00:1a:2b:00:ab:cd", salt=b"city-2026")
    assert reverse_hashed_mac(digest, ["00:1a:2b"], salt=b"city-2026", device_bits=16) == "00:1a:2b:00:ab:cd"
    assert reverse_hashed_mac(digest, ["00:1a:2b"], salt=b"wrong", device_bits=16) is None


def test_address_outside_the_search_space_is_not_found():
    assert reverse_hashed_mac(hash_mac("00:1a:2b:01:00:00"), ["00:1a:2b"], device_bits=16) is None
    assert reverse_hashed_mac(hash_mac("00:1a:2c:00:00:01"), ["00:1a:2b"], device_bits=16) is None


def test_progress_prints_one_line_per_oui(capsys):
    reverse_hashed_mac(hash_mac("00:1a:2c:00:00:05"), ["00:1a:2b", "00:1a:2c"], progress=True, device_bits=8)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "256 hashes" in lines[0] and lines[1].endswith("found")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"digest": "abc", "oui_prefixes": ["00:1a:2b"]}, "64 characters"),
        ({"digest": "0" * 64, "oui_prefixes": ["00:1a"]}, "OUI"),
        ({"digest": "0" * 64, "oui_prefixes": []}, "empty"),
        ({"digest": "0" * 64, "oui_prefixes": ["00:1a:2b"], "device_bits": 25}, "device_bits"),
        ({"digest": "0" * 64, "oui_prefixes": ["00:1a:2b"], "salt": 5}, "salt"),
    ],
)
def test_reverse_input_errors_are_bilingual(kwargs, needle):
    with pytest.raises(ValueError) as err:
        reverse_hashed_mac(**kwargs)
    assert needle in str(err.value) and is_japanese(str(err.value))


def test_enumeration_rate_returns_a_rate_not_a_benchmark():
    rate = enumeration_rate(sample=2000)
    assert isinstance(rate, float) and rate > 0
    with pytest.raises(ValueError, match="sample"):
        enumeration_rate(0)


# --------------------------------------------------------------------------- keyed day pseudonyms


def test_pseudonym_is_hmac_sha256_under_a_day_key_per_rfc_2104():
    day_key = rfc2104_hmac_sha256(SECRET, b"sscity-pseudonym-day:2026-04-01")
    expected = rfc2104_hmac_sha256(day_key, bytes.fromhex("001a2b3c4d5e")).hex()
    assert rotating_pseudonym("00:1a:2b:3c:4d:5e", "2026-04-01", SECRET) == expected
    assert rotating_pseudonym("00-1A-2B-3C-4D-5E", dt.date(2026, 4, 1), SECRET) == expected
    assert rotating_pseudonym(
        "001a2b3c4d5e", dt.datetime(2026, 4, 1, 23, 59, tzinfo=dt.UTC), SECRET
    ) == expected


def test_pseudonym_changes_with_the_day_and_the_secret():
    mac = "00:1a:2b:3c:4d:5e"
    day1 = rotating_pseudonym(mac, "2026-04-01", SECRET)
    assert day1 != rotating_pseudonym(mac, "2026-04-02", SECRET)
    assert day1 != rotating_pseudonym(mac, "2026-04-01", bytes(32))
    assert day1 != hash_mac(mac)


def test_pseudonym_is_not_reversible_by_the_same_enumeration():
    mac = "00:1a:2b:00:12:34"
    pseudonym = rotating_pseudonym(mac, "2026-04-01", SECRET)
    assert reverse_hashed_mac(hash_mac(mac), ["00:1a:2b"], device_bits=16) == mac  # the naive hash falls
    # Without the secret the attacker can only try plain or salted SHA-256: nothing matches.
    for salt in (b"", b"2026-04-01", b"sscity-pseudonym-day:2026-04-01"):
        assert reverse_hashed_mac(pseudonym, ["00:1a:2b"], salt=salt, device_bits=16) is None


@pytest.mark.parametrize(
    ("secret", "day", "needle"),
    [(b"short", "2026-04-01", "16 random bytes"), ("x" * 32, "2026-04-01", "16 random bytes"),
     (SECRET, "2026-13-01", "ISO date"), (SECRET, 20260401, "ISO date")],
)
def test_pseudonym_input_errors_are_bilingual(secret, day, needle):
    with pytest.raises(ValueError) as err:
        rotating_pseudonym("00:1a:2b:3c:4d:5e", day, secret)
    assert needle in str(err.value) and is_japanese(str(err.value))


# --------------------------------------------------------------------------- counting


def random_sightings(seed: int = 13, n: int = 2000):
    rng = random.Random(seed)
    macs = [f"00:1a:2b:{rng.randrange(256):02x}:{rng.randrange(256):02x}:{rng.randrange(256):02x}"
            for _ in range(150)]
    styles = [str, str.upper, lambda m: m.replace(":", "-")]
    return [(rng.uniform(1_780_000_000, 1_780_000_000 + 7200), rng.choice(styles)(rng.choice(macs)))
            for _ in range(n)]


def test_counts_match_pandas_nunique():
    sightings = random_sightings()
    counts = count_unique_devices(sightings, 600)
    frame = pd.DataFrame(sightings, columns=["t", "mac"])
    frame["mac"] = frame["mac"].str.lower().str.replace("-", ":")
    frame["window"] = (frame["t"] // 600 * 600).astype(int)
    expected = frame.groupby("window")["mac"].nunique()
    assert counts == {int(k): int(v) for k, v in expected.items()}
    assert list(counts) == sorted(counts)
    assert count_unique_devices(sightings, dt.timedelta(minutes=10)) == counts


def test_only_counts_leave_the_function():
    sightings = random_sightings(seed=1, n=300)
    counts = count_unique_devices(sightings, 3600)
    assert all(type(k) is int and type(v) is int for k, v in counts.items())
    text = repr(counts).lower()
    assert not any(mac.lower()[-8:] in text for _, mac in sightings)


def test_counting_pseudonyms_and_aware_datetimes():
    t0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
    macs = ["00:1a:2b:00:00:01", "00:1a:2b:00:00:02", "00:1a:2b:00:00:01"]
    sightings = [
        (t0 + dt.timedelta(minutes=i), rotating_pseudonym(m, t0, SECRET)) for i, m in enumerate(macs)
    ]
    assert count_unique_devices(sightings, 600) == {int(t0.timestamp()): 2}


@pytest.mark.parametrize(
    ("sightings", "window", "needle"),
    [
        ([(0, "00:1a:2b:00:00:01")], 0, "window"),
        ([(0, "00:1a:2b:00:00:01")], "10min", "window"),
        ([(0, "not-a-mac")], 60, "MAC address"),
        ([(0,)], 60, "pair"),
        ([("noon", "00:1a:2b:00:00:01")], 60, "epoch seconds"),
        ([(dt.datetime(2026, 4, 1), "00:1a:2b:00:00:01")], 60, "naive"),
    ],
)
def test_count_input_errors_are_bilingual(sightings, window, needle):
    with pytest.raises(ValueError) as err:
        count_unique_devices(sightings, window)
    assert needle in str(err.value) and is_japanese(str(err.value))
