"""sscity.sensing.lora against published airtime values, the AS923 tables and hand computations."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from sscity.sensing.lora import (
    AS923_DATA_RATES,
    LORAWAN_OVERHEAD_BYTES,
    arib_t108_check,
    battery_life_days,
    check_payload,
    lorawan_time_on_air,
    max_mac_payload,
    max_payload,
    time_on_air,
)

JAPANESE = "をにはでの"  # every bilingual message has some of these particles


def _bilingual(message: str) -> bool:
    return " / " in message and any(ch in message for ch in JAPANESE)


# --- time on air: published values -------------------------------------------------------

# avbentem/airtime-calculator (the TTN community's LoRaWAN airtime calculator,
# https://avbentem.github.io/airtime-calculator), src/lora/Airtime.test.ts: PHY payload size,
# SF, bandwidth kHz, coding rate (1 = 4/5, 4 = 4/8) -> ms. Preamble 8, explicit header, CRC on.
AVBENTEM = [
    (14, 7, 125, 1, 46.336),
    (15, 7, 125, 1, 46.336),
    (16, 7, 125, 1, 51.456),
    (25, 7, 125, 1, 61.696),
    (14, 7, 250, 1, 23.168),
    (16, 7, 250, 1, 25.728),
    (25, 7, 250, 1, 30.848),
    (14, 7, 125, 4, 61.696),
    (16, 7, 125, 4, 69.888),
    (25, 7, 125, 4, 86.272),
    (14, 7, 250, 4, 30.848),
    (16, 7, 250, 4, 34.944),
    (25, 7, 250, 4, 43.136),
    (14, 8, 125, 1, 82.432),
    (15, 8, 125, 1, 92.672),
    (25, 8, 125, 1, 113.152),
    (14, 11, 125, 1, 659.456),  # low data rate optimisation on (automatic at SF11/125 kHz)
    (16, 11, 125, 1, 659.456),
    (25, 11, 125, 1, 823.296),
]


@pytest.mark.parametrize(("payload", "sf", "bw_khz", "cr", "ms"), AVBENTEM)
def test_matches_the_ttn_community_airtime_calculator(payload, sf, bw_khz, cr, ms):
    assert time_on_air(payload, sf, bw_khz * 1000, cr) * 1000 == pytest.approx(ms, abs=1e-9)


def test_matches_rf_wireless_world_examples():
    # https://www.rfwireless-world.com/calculators/LoRaWAN-Airtime-calculator.html
    # Example 1: SF7, CR 4/5, 125 kHz, preamble 8, 10 bytes, explicit header, LDRO off:
    # preamble 12.544 ms, header + payload 28.672 ms, packet 41.216 ms.
    assert time_on_air(10, 7) * 1000 == pytest.approx(41.216, abs=1e-9)
    # Example 2: the same at SF11 with LDRO on: preamble 200.704 + 376.832 = 577.536 ms.
    assert time_on_air(10, 11, low_data_rate_optimize=True) * 1000 == pytest.approx(577.536, abs=1e-9)
    assert time_on_air(10, 11) == time_on_air(10, 11, low_data_rate_optimize=True)


def test_matches_the_an1200_13_spreadsheet():
    # "Formulas taken from AN1200.13 (LoRa Modem Designers Guide)" spreadsheet,
    # https://docs.google.com/spreadsheets/d/1voGAtQAjC1qBmaVuP1ApNKs1ekgUjavHuVQIXyYSvNc:
    # 13 bytes, SF9, explicit header, LDRO off, CR 4/5, preamble 8, 125 kHz ->
    # Tsym 4.096 ms, Tpreamble 50.176 ms, 28 payload symbols, Tpacket 164.864 ms.
    assert time_on_air(13, 9) * 1000 == pytest.approx(164.864, abs=1e-9)


# --- time on air: by hand, step by step ---------------------------------------------------


def test_lorawan_uplink_at_sf10_by_hand():
    # 24-byte application payload + 13 bytes LoRaWAN overhead = PL 37 at SF10, 125 kHz, CR 4/5.
    # Tsym = 2**10 / 125000 = 8.192 ms; DE = 0 (8.192 ms <= 16 ms); IH = 0; CRC = 1.
    # numerator = 8*37 - 4*10 + 28 + 16 - 0 = 300; denominator = 4*(10 - 0) = 40;
    # ceil(300/40) = ceil(7.5) = 8 blocks of (1+4) = 40 symbols; n_payload = 8 + 40 = 48.
    # T = (8 + 4.25 + 48) * 8.192 ms = 60.25 * 8.192 = 493.568 ms.
    assert lorawan_time_on_air(24, 2) * 1000 == pytest.approx(493.568, abs=1e-9)
    assert time_on_air(24 + LORAWAN_OVERHEAD_BYTES, 10) == lorawan_time_on_air(24, 2)


def test_sf12_with_low_data_rate_optimisation_by_hand():
    # PL 37 at SF12: Tsym = 4096/125000 = 32.768 ms > 16 ms, so DE = 1.
    # numerator = 296 - 48 + 44 = 292; denominator = 4*(12 - 2) = 40; ceil(7.3) = 8;
    # n_payload = 8 + 8*5 = 48; T = 60.25 * 32.768 = 1974.272 ms.
    assert lorawan_time_on_air(24, 0) * 1000 == pytest.approx(1974.272, abs=1e-9)
    # Forced off: denominator 48, ceil(292/48) = ceil(6.08) = 7; n = 43; T = 55.25 * 32.768.
    assert time_on_air(37, 12, low_data_rate_optimize=False) * 1000 == pytest.approx(55.25 * 32.768)


def test_implicit_header_without_crc_by_hand():
    # PL 11, SF7, CR 4/8, implicit header, no CRC: numerator = 88 - 28 + 28 + 0 - 20 = 68;
    # ceil(68/28) = 3 blocks of 8 symbols -> n_payload = 32; T = (8 + 4.25 + 32) * 1.024 ms.
    t = time_on_air(11, 7, coding_rate=4, explicit_header=False, crc=False)
    assert t * 1000 == pytest.approx(44.25 * 1.024)


def test_tiny_payload_uses_the_eight_symbol_floor():
    # PL 0, SF12, implicit header, no CRC, DE=1: numerator = 0 - 48 + 28 - 20 = -40 < 0,
    # so the max(..., 0) keeps n_payload at 8; T = (8 + 4.25 + 8) * 32.768 ms.
    t = time_on_air(0, 12, explicit_header=False, crc=False)
    assert t == pytest.approx(20.25 * 0.032768)


def test_low_data_rate_optimisation_follows_the_symbol_time():
    # SF11 at 250 kHz: Tsym = 8.192 ms, so auto mode leaves LDRO off.
    assert time_on_air(30, 11, 250_000) == time_on_air(30, 11, 250_000, low_data_rate_optimize=False)
    assert time_on_air(30, 11, 250_000) < time_on_air(30, 11, 250_000, low_data_rate_optimize=True)
    # SF10 at 125 kHz (8.192 ms): off; SF11 at 125 kHz (16.384 ms): on.
    assert time_on_air(30, 10) == time_on_air(30, 10, low_data_rate_optimize=False)
    assert time_on_air(30, 11) == time_on_air(30, 11, low_data_rate_optimize=True)


def test_airtime_grows_with_payload_and_spreading_factor():
    times = [time_on_air(n, 9) for n in range(0, 256)]
    assert all(a <= b for a, b in pairwise(times))
    by_sf = [time_on_air(20, sf) for sf in range(7, 13)]
    assert all(1.5 * a < b < 3 * a for a, b in pairwise(by_sf))  # roughly doubles per SF step


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload_bytes": 256, "spreading_factor": 7},
        {"payload_bytes": -1, "spreading_factor": 7},
        {"payload_bytes": 10.0, "spreading_factor": 7},
        {"payload_bytes": 10, "spreading_factor": 13},
        {"payload_bytes": 10, "spreading_factor": 5},
        {"payload_bytes": 10, "spreading_factor": 7, "coding_rate": 5},
        {"payload_bytes": 10, "spreading_factor": 7, "coding_rate": 0},
        {"payload_bytes": 10, "spreading_factor": 7, "bandwidth_hz": 0},
        {"payload_bytes": 10, "spreading_factor": 7, "bandwidth_hz": float("nan")},
        {"payload_bytes": 10, "spreading_factor": 7, "preamble_symbols": 2},
        {"payload_bytes": True, "spreading_factor": 7},
    ],
)
def test_time_on_air_rejects_bad_input_in_both_languages(kwargs):
    with pytest.raises(ValueError) as err:
        time_on_air(**kwargs)
    assert _bilingual(str(err.value))


# --- AS923 payload limits ------------------------------------------------------------------

# LoRaWAN Regional Parameters RP002-1.0.x, AS923 maximum payload size (N, application payload);
# identical in Semtech's LoRaMac-node RegionAS923.h: MaxPayloadOfDatarateDwell0AS923 =
# {51, 51, 51, 115, 242, 242, ...} and MaxPayloadOfDatarateDwell1UpAS923 = {0, 0, 11, 53, 125, 242, ...}
# (0 there = not allowed).
RP002_NO_DWELL = [51, 51, 51, 115, 242, 242]
RP002_DWELL_400MS = [None, None, 11, 53, 125, 242]


def test_as923_tables_match_rp002():
    assert [max_payload(dr, dwell_time_limited=False) for dr in range(6)] == RP002_NO_DWELL
    assert [max_payload(dr, dwell_time_limited=True) for dr in range(6)] == RP002_DWELL_400MS
    assert max_payload(2) == 11  # the dwell limit is the default (Japan)
    # M (MAC payload) = N + 8 (FHDR 7 + FPort 1): RP002 lists 59, 59, 59, 123, 250, 250.
    assert [max_mac_payload(dr, False) for dr in range(6)] == [59, 59, 59, 123, 250, 250]
    assert [max_mac_payload(dr, True) for dr in range(6)] == [None, None, 19, 61, 133, 250]
    assert [AS923_DATA_RATES[dr][0] for dr in range(6)] == [12, 11, 10, 9, 8, 7]


def test_dwell_limited_maxima_are_the_largest_uplinks_within_400_ms():
    # Cross-check of two independent sources: the spec's table and Semtech's formula. Each
    # dwell-limited maximum fits in 400 ms and one byte more would not (DR5 is capped at 242).
    for dr in (2, 3, 4, 5):
        n = max_payload(dr, True)
        assert lorawan_time_on_air(n, dr) <= 0.400
        if n < 242:
            assert lorawan_time_on_air(n + 1, dr) > 0.400
    # DR0 and DR1 are barred: even an empty uplink is longer than 400 ms.
    assert lorawan_time_on_air(0, 0) > 0.400 and lorawan_time_on_air(0, 1) > 0.400
    # 11 bytes at DR2 (SF10): PL 24 -> ceil(196/40) = 5 -> 33 symbols -> 45.25 * 8.192 ms.
    assert lorawan_time_on_air(11, 2) * 1000 == pytest.approx(370.688, abs=1e-9)


def test_check_payload_accepts_and_returns_the_limit():
    assert check_payload(11, 2) == 11
    assert check_payload(0, 5) == 242
    assert check_payload(51, 0, dwell_time_limited=False) == 51


def test_check_payload_explains_too_big_payloads():
    with pytest.raises(ValueError, match="maximum is 11 bytes") as err:
        check_payload(12, 2)
    assert _bilingual(str(err.value)) and "11 バイト" in str(err.value)
    with pytest.raises(ValueError, match="DR0 cannot be used") as err:
        check_payload(1, 0)
    assert _bilingual(str(err.value))
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError):
            check_payload(bad, 2)
    for bad_dr in (6, -1, True, "2"):
        with pytest.raises(ValueError) as err:
            max_payload(bad_dr)
        assert _bilingual(str(err.value))
    with pytest.raises(ValueError):
        lorawan_time_on_air(243, 5)  # 243 + 13 > 255 bytes of PHY payload


# --- ARIB STD-T108 -------------------------------------------------------------------------


def test_small_uplink_every_ten_minutes_passes():
    report = arib_t108_check(lorawan_time_on_air(11, 2), 600)
    assert report.passed and report.regime == "short" and report.failed() == ()
    limits = {r.rule: (r.limit, r.unit) for r in report.rules}
    assert limits == {
        "single transmission time": (0.4, "s"),
        "pause after transmission": (0.002, "s"),
        "total transmission time per hour": (360.0, "s/h"),
    }
    assert all("ARIB STD-T108" in r.source for r in report.rules)
    per_hour = next(r for r in report.rules if r.unit == "s/h")
    assert per_hour.value == pytest.approx(0.370688 * 6)


def test_a_half_second_packet_breaks_the_400_ms_rule_but_not_the_4_s_rule():
    toa = lorawan_time_on_air(24, 2)  # 493.568 ms
    short = arib_t108_check(toa, 600)
    assert not short.passed
    assert [r.rule for r in short.failed()] == ["single transmission time"]
    long = arib_t108_check(toa, 600, carrier_sense_s=5e-3)
    assert long.passed and long.regime == "long"
    assert {r.rule: r.limit for r in long.rules} == {
        "single transmission time": 4.0,
        "pause after transmission": 0.050,
    }
    assert not arib_t108_check(4.5, 600, carrier_sense_s=0.010).passed


def test_hourly_total_is_ten_percent():
    # 0.36 s every 3.6 s = 360 s/h exactly: allowed; 0.37 s every 3.6 s = 370 s/h: not.
    assert arib_t108_check(0.36, 3.6).passed
    over = arib_t108_check(0.37, 3.6)
    assert [r.rule for r in over.failed()] == ["total transmission time per hour"]
    assert over.failed()[0].value == pytest.approx(370.0)


def test_pause_rules():
    # 1.5 ms of silence is below the 2 ms pause; 40 ms below the 50 ms pause of the 4 s regime.
    assert [r.rule for r in arib_t108_check(0.001, 0.0025).failed()] == [
        "pause after transmission",
        "total transmission time per hour",
    ]
    assert [r.rule for r in arib_t108_check(1.0, 1.04, carrier_sense_s=5e-3).failed()] == [
        "pause after transmission"
    ]


def test_arib_check_rejects_bad_input_in_both_languages():
    for args, kwargs in [
        ((0.5, 0.5), {}),  # interval not longer than the transmission
        ((0.1, 60), {"carrier_sense_s": 50e-6}),  # shorter than 128 us of listening
        ((0.0, 60), {}),
        ((0.1, -60), {}),
        ((float("inf"), 60), {}),
    ]:
        with pytest.raises(ValueError) as err:
            arib_t108_check(*args, **kwargs)
        assert _bilingual(str(err.value))


# --- battery life --------------------------------------------------------------------------


def test_battery_life_by_hand():
    # 2,000 mAh; 120 mA for 1.5 s per cycle; 10 uA asleep the rest.
    # Every 10 min: I = (120*1.5 + 0.010*598.5) / 600 = 185.985/600 = 0.309975 mA
    #   -> 2000 / 0.309975 = 6452.1 h = 268.84 days.
    assert battery_life_days(2000, 120, 1.5, 600, 10) == pytest.approx(2000 / (185.985 / 600) / 24)
    assert battery_life_days(2000, 120, 1.5, 600, 10) == pytest.approx(268.84, abs=0.01)
    # Every minute: I = (180 + 0.010*58.5) / 60 = 3.00975 mA -> 664.5 h = 27.69 days.
    assert battery_life_days(2000, 120, 1.5, 60, 10) == pytest.approx(27.688, abs=0.001)


def test_battery_life_with_receive_windows_and_self_discharge_by_hand():
    # 1,000 mAh; 40 mA for 0.37 s; RX1 + RX2 at 11 mA for 0.1 s in all; 2 uA asleep; every 300 s.
    # charge per cycle = 40*0.37 + 11*0.1 + 0.002*(300 - 0.47) = 14.8 + 1.1 + 0.59906 = 16.49906 mA s
    # I = 16.49906 / 300 = 0.0549969 mA; self-discharge 2 %/year: 1000*0.02/8760 = 0.00228311 mA.
    avg = 16.49906 / 300 + 20 / 8760
    got = battery_life_days(
        1000, 40, 0.37, 300, 2, rx_current_mA=11, rx_time_s=0.1, self_discharge_per_year=0.02
    )
    assert got == pytest.approx(1000 / avg / 24)
    assert got == pytest.approx(727.4, abs=0.1)
    # The receive windows and self-discharge each shorten the life.
    assert (
        battery_life_days(1000, 40, 0.37, 300, 2)
        > battery_life_days(1000, 40, 0.37, 300, 2, rx_current_mA=11, rx_time_s=0.1)
        > got
    )
    # Sleeping only: 1000 mAh / 0.002 mA = 500,000 h.
    assert battery_life_days(1000, 0, 0, 300, 2) == pytest.approx(500_000 / 24)


def test_battery_life_rejects_bad_input_in_both_languages():
    good = {
        "capacity_mAh": 2000,
        "tx_current_mA": 120,
        "time_on_air_s": 1.5,
        "interval_s": 600,
        "sleep_current_uA": 10,
    }
    for change in [
        {"capacity_mAh": 0},
        {"tx_current_mA": -1},
        {"interval_s": 1.0},  # shorter than the 1.5 s burst
        {"sleep_current_uA": math.nan},
        {"self_discharge_per_year": 1.5},
        {"rx_time_s": 599},  # 1.5 + 599 > 600
        {"tx_current_mA": 0, "sleep_current_uA": 0},  # draws nothing: unbounded
    ]:
        with pytest.raises(ValueError) as err:
            battery_life_days(**{**good, **change})
        assert _bilingual(str(err.value)), change
