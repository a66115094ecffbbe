"""LoRa radio budget of a sensor station: time on air, AS923 payload limits, ARIB rules, battery.

- :func:`time_on_air` -- seconds a LoRa packet occupies the channel (Semtech's formula).
- :func:`lorawan_time_on_air` -- the same for a LoRaWAN uplink at an AS923 data rate
  (adds the 13-byte LoRaWAN overhead to the application payload).
- :func:`max_payload` / :func:`max_mac_payload` / :func:`check_payload` -- AS923 payload
  limits per data rate, with and without the 400 ms uplink dwell-time limit.
- :func:`arib_t108_check` -- does a periodic transmission keep to the Japanese 920 MHz
  transmission-time rules (ARIB STD-T108)? Each rule comes back with its number and source.
- :func:`battery_life_days` -- how long a duty-cycled station lasts on a battery.

Sources
-------
- Semtech, *SX1276/77/78/79 datasheet*, section 4.1.1.7 "Time on air", and Semtech
  AN1200.13, *LoRa Modem Designer's Guide* (2013).
- LoRa Alliance, *RP002-1.0.x LoRaWAN Regional Parameters*, AS923 section (data-rate table
  and maximum payload size tables). The same payload tables are in Semtech's reference stack
  LoRaMac-node (``RegionAS923.h``).
- ARIB STD-T108 (920 MHz-band telemeter, telecontrol and data transmission radio equipment),
  Part 2 (specified low-power radio stations, 20 mW), transmission-time-limit clause; the same
  figures are set in law by the MIC notifications under the Ordinance Regulating Radio
  Equipment (e.g. 平成31年総務省告示第123号 for the 920 MHz land mobile stations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "AS923_DATA_RATES",
    "LORAWAN_OVERHEAD_BYTES",
    "RuleResult",
    "T108Report",
    "arib_t108_check",
    "battery_life_days",
    "check_payload",
    "lorawan_time_on_air",
    "max_mac_payload",
    "max_payload",
    "time_on_air",
]

#: Bytes LoRaWAN adds around the application payload of an uplink without MAC options:
#: MHDR 1 + FHDR 7 (DevAddr 4, FCtrl 1, FCnt 2) + FPort 1 + MIC 4 (LoRaWAN 1.0.x, section 4).
LORAWAN_OVERHEAD_BYTES = 13

#: FHDR 7 + FPort 1: the difference between the MAC payload (M) and application payload (N)
#: columns of the Regional Parameters' payload tables.
_MAC_MINUS_APP_BYTES = 8

#: AS923 data rates used by LoRa end devices at 125 kHz (RP002-1.0.x, AS923 data-rate table):
#: data rate -> (spreading factor, bandwidth in Hz). DR6 (SF7/250 kHz) and DR7 (FSK) are left
#: out: the course's stations use the 125 kHz rates every AS923 device must support.
AS923_DATA_RATES = {
    0: (12, 125_000),
    1: (11, 125_000),
    2: (10, 125_000),
    3: (9, 125_000),
    4: (8, 125_000),
    5: (7, 125_000),
}

# Maximum application payload N (FRMPayload bytes, no FOpts) per data rate, RP002-1.0.x AS923
# "Maximum payload size" tables; None = the data rate may not be used at all. The dwell-limited
# values are the largest payloads whose uplink stays within 400 ms on air.
_AS923_MAX_APP_PAYLOAD = {
    False: {0: 51, 1: 51, 2: 51, 3: 115, 4: 242, 5: 242},
    True: {0: None, 1: None, 2: 11, 3: 53, 4: 125, 5: 242},
}

#: Uplink dwell-time limit when UplinkDwellTime = 1 (TxParamSetupReq), seconds.
AS923_MAX_DWELL_S = 0.400

# Symbol time above which the LoRaWAN stacks switch on low-data-rate optimisation (SF11 and
# SF12 at 125 kHz); Semtech's datasheet says it is "mandated" when a symbol exceeds 16 ms.
_LDRO_SYMBOL_THRESHOLD_S = 0.016


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"{name} must be an integer from {low} to {high}; got {value!r}. / "
            f"{name} は {low} から {high} までの整数にしてください(受け取った値: {value!r})。"
        )
    return value


def _check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound, bound_ja = (">= 0", "0 以上") if allow_zero else ("> 0", "0 より大きい値")
        raise ValueError(
            f"{name} must be a finite number {bound}; got {value!r}. / "
            f"{name} は{bound_ja}の有限の数にしてください(受け取った値: {value!r})。"
        )
    return float(value)


def time_on_air(
    payload_bytes: int,
    spreading_factor: int,
    bandwidth_hz: float = 125_000,
    coding_rate: int = 1,
    preamble_symbols: int = 8,
    explicit_header: bool = True,
    crc: bool = True,
    low_data_rate_optimize: bool | None = None,
) -> float:
    """Time a LoRa packet occupies the channel, in seconds (Semtech's formula).

    ``T_sym = 2**SF / BW``; ``T_preamble = (n_preamble + 4.25) T_sym``;
    ``n_payload = 8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) (CR + 4), 0)``;
    ``T = T_preamble + n_payload T_sym``, with IH = 1 for an implicit header and DE = 1 with
    low-data-rate optimisation (Semtech SX1276 datasheet section 4.1.1.7; AN1200.13).

    Parameters
    ----------
    payload_bytes : int
        PHY payload length PL, 0..255 bytes. For LoRaWAN this is the application payload plus
        :data:`LORAWAN_OVERHEAD_BYTES` (or use :func:`lorawan_time_on_air`).
    spreading_factor : int
        SF, 6..12.
    bandwidth_hz : float, default 125 kHz
    coding_rate : int, default 1
        1..4 for the coding rates 4/5, 4/6, 4/7, 4/8.
    preamble_symbols : int, default 8
        Programmed preamble length (LoRaWAN uses 8), 6..65535.
    explicit_header : bool, default True
    crc : bool, default True
        Payload CRC on (LoRaWAN uplinks: on).
    low_data_rate_optimize : bool or None, default None
        None switches it on when the symbol time exceeds 16 ms, as LoRaWAN stacks do.

    Returns
    -------
    float
        Time on air in seconds.

    Examples
    --------
    >>> round(time_on_air(10, 7) * 1000, 3)  # SF7, 125 kHz, CR 4/5, 10-byte payload
    41.216
    """
    _check_int("payload_bytes", payload_bytes, 0, 255)
    _check_int("spreading_factor", spreading_factor, 6, 12)
    _check_int("coding_rate", coding_rate, 1, 4)
    _check_int("preamble_symbols", preamble_symbols, 6, 65535)
    bandwidth_hz = _check_positive("bandwidth_hz", bandwidth_hz)

    symbol_s = 2**spreading_factor / bandwidth_hz
    if low_data_rate_optimize is None:
        low_data_rate_optimize = symbol_s > _LDRO_SYMBOL_THRESHOLD_S
    de = int(bool(low_data_rate_optimize))
    ih = 0 if explicit_header else 1
    numerator = 8 * payload_bytes - 4 * spreading_factor + 28 + 16 * int(bool(crc)) - 20 * ih
    # Integer ceiling: avoids float rounding at exact multiples.
    blocks = -(-numerator // (4 * (spreading_factor - 2 * de)))
    payload_symbols = 8 + max(blocks * (coding_rate + 4), 0)
    return (preamble_symbols + 4.25 + payload_symbols) * symbol_s


def lorawan_time_on_air(app_payload_bytes: int, data_rate: int) -> float:
    """Time on air (s) of an AS923 LoRaWAN uplink carrying ``app_payload_bytes``.

    Adds the 13 bytes of LoRaWAN overhead and uses the LoRaWAN PHY settings: CR 4/5,
    8-symbol preamble, explicit header, CRC on, low-data-rate optimisation by symbol time.
    """
    _check_data_rate(data_rate)
    _check_int("app_payload_bytes", app_payload_bytes, 0, 255 - LORAWAN_OVERHEAD_BYTES)
    sf, bw = AS923_DATA_RATES[data_rate]
    return time_on_air(app_payload_bytes + LORAWAN_OVERHEAD_BYTES, sf, bw)


def _check_data_rate(data_rate) -> int:
    if isinstance(data_rate, bool) or data_rate not in AS923_DATA_RATES:
        raise ValueError(
            f"data_rate must be one of the AS923 LoRa 125 kHz data rates 0..5 "
            f"(DR0 = SF12 ... DR5 = SF7); got {data_rate!r}. / "
            f"data_rate は AS923 の 125 kHz データレート 0〜5(DR0 = SF12 … DR5 = SF7)の"
            f"いずれかにしてください(受け取った値: {data_rate!r})。"
        )
    return data_rate


def max_payload(data_rate: int, dwell_time_limited: bool = True) -> int | None:
    """Largest application payload (FRMPayload, bytes) of an AS923 uplink at ``data_rate``.

    Parameters
    ----------
    data_rate : int
        AS923 data rate 0..5 (DR0 = SF12/125 kHz ... DR5 = SF7/125 kHz).
    dwell_time_limited : bool, default True
        True when UplinkDwellTime = 1 (each uplink at most 400 ms on air), as Japanese
        networks configure AS923.

    Returns
    -------
    int or None
        Maximum application payload N in bytes (no MAC options in FOpts), or None when the
        data rate cannot be used under the dwell-time limit (DR0, DR1).

    Notes
    -----
    RP002-1.0.x LoRaWAN Regional Parameters, AS923 maximum payload size tables (column N);
    no dwell limit: 51, 51, 51, 115, 242, 242; 400 ms dwell: -, -, 11, 53, 125, 242.
    """
    _check_data_rate(data_rate)
    return _AS923_MAX_APP_PAYLOAD[bool(dwell_time_limited)][data_rate]


def max_mac_payload(data_rate: int, dwell_time_limited: bool = True) -> int | None:
    """Largest MAC payload (column M of the RP002 tables) = application payload + 8 bytes."""
    n = max_payload(data_rate, dwell_time_limited)
    return None if n is None else n + _MAC_MINUS_APP_BYTES


def check_payload(app_payload_bytes: int, data_rate: int, dwell_time_limited: bool = True) -> int:
    """Raise ValueError if an application payload does not fit an AS923 uplink; else return the limit.

    Examples
    --------
    >>> check_payload(11, 2)
    11
    """
    if isinstance(app_payload_bytes, bool) or not isinstance(app_payload_bytes, int) or app_payload_bytes < 0:
        raise ValueError(
            f"app_payload_bytes must be a non-negative integer; got {app_payload_bytes!r}. / "
            f"app_payload_bytes は 0 以上の整数にしてください(受け取った値: {app_payload_bytes!r})。"
        )
    limit = max_payload(data_rate, dwell_time_limited)
    dwell = "with the 400 ms dwell-time limit" if dwell_time_limited else "without a dwell-time limit"
    dwell_ja = "400 ms のドウェルタイム制限あり" if dwell_time_limited else "ドウェルタイム制限なし"
    if limit is None:
        raise ValueError(
            f"DR{data_rate} cannot be used for uplinks {dwell} (AS923): even an empty frame is "
            f"on air longer than 400 ms. Use DR2 or faster. / "
            f"AS923 の{dwell_ja}では DR{data_rate} で上り送信できません(空のフレームでも "
            f"400 ms を超えます)。DR2 以上を使ってください。"
        )
    if app_payload_bytes > limit:
        raise ValueError(
            f"{app_payload_bytes} bytes do not fit an AS923 uplink at DR{data_rate} {dwell}: "
            f"the maximum is {limit} bytes. Send fewer bytes (pack the readings) or use a "
            f"faster data rate. / "
            f"AS923 の DR{data_rate}({dwell_ja})では {app_payload_bytes} バイトは送れません。"
            f"上限は {limit} バイトです。データを詰めるか、より速いデータレートを使ってください。"
        )
    return limit


@dataclass(frozen=True)
class RuleResult:
    """One transmission rule checked: what was measured, its limit and where the limit comes from."""

    rule: str
    passed: bool
    value: float
    limit: float
    unit: str
    source: str


@dataclass(frozen=True)
class T108Report:
    """Result of :func:`arib_t108_check`: ``passed`` is True when every rule passes."""

    regime: str
    rules: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    def failed(self) -> tuple[RuleResult, ...]:
        """The rules that did not pass."""
        return tuple(r for r in self.rules if not r.passed)


_T108_SOURCE = "ARIB STD-T108 Part 2 (20 mW specified low-power station), transmission time limit"
# (carrier-sense time, max single transmission, min pause, max total per hour or None)
_T108_REGIMES = {
    "long": (5e-3, 4.0, 50e-3, None),
    "short": (128e-6, 0.4, 2e-3, 360.0),
}


def arib_t108_check(
    time_on_air_s: float,
    interval_s: float,
    carrier_sense_s: float = 128e-6,
) -> T108Report:
    """Check a periodic transmission against the ARIB STD-T108 920 MHz transmission-time rules.

    A station sends one packet of ``time_on_air_s`` every ``interval_s`` seconds, after
    listening (carrier sense, listen-before-talk at -80 dBm) for ``carrier_sense_s``.

    Rules applied (20 mW specified low-power stations, ARIB STD-T108 Part 2; the same figures
    are in the MIC notification 平成31年総務省告示第123号 for 920 MHz land mobile stations):

    =====================  ===================  ==============  ====================
    carrier sense          each transmission    pause after it  total per hour
    =====================  ===================  ==============  ====================
    >= 5 ms   ("long")     <= 4 s               >= 50 ms        (no hourly limit)
    >= 128 us ("short")    <= 400 ms            >= 2 ms         <= 360 s (10 %)
    =====================  ===================  ==============  ====================

    Parameters
    ----------
    time_on_air_s : float
        Length of one transmission (e.g. from :func:`time_on_air`).
    interval_s : float
        Time from the start of one transmission to the start of the next; must exceed
        ``time_on_air_s``.
    carrier_sense_s : float, default 128 us
        How long the device listens before sending; >= 5 ms selects the "long" regime.

    Returns
    -------
    T108Report
        ``.passed``, ``.regime`` and ``.rules`` (each a :class:`RuleResult` with its value,
        limit, unit and source).

    Notes
    -----
    Assumptions and limits of this check, stated so nobody mistakes it for a certification:

    - Which regime a channel allows depends on the channel (the 4 s regime is not open on
      every channel); this function does not check the channel. The AS923-1 default channels
      923.2 and 923.4 MHz are checked with the 128 us regime in the course.
    - Not checked against the text of the standard itself (edition 1.5, 2023), so no clause
      number is given. The four figure pairs were read in the MIC notification above, which
      sets them for the 920 MHz *land mobile* stations (ARIB STD-T108 Part 1, 250 mW); that
      the 20 mW specified low-power stations (Part 2) keep to the same pairs is taken from
      secondary sources, not from the notification for those stations (平成元年郵政省告示
      第49号), which was not read.
    - Exceptions are not modelled: replies sent within 2 ms of receiving another station's
      request (the notification's note to the hourly sum), channel-specific limits, stations
      that need no carrier sense. The 360 s/h sum is for one device; the pause is the idle time
      ``interval_s - time_on_air_s`` and the hourly total is
      ``time_on_air_s * 3600 / interval_s``.

    Examples
    --------
    >>> arib_t108_check(0.371, 600).passed
    True
    """
    toa = _check_positive("time_on_air_s", time_on_air_s)
    interval = _check_positive("interval_s", interval_s)
    cs = _check_positive("carrier_sense_s", carrier_sense_s, allow_zero=True)
    if interval <= toa:
        raise ValueError(
            f"interval_s ({interval_s!r}) must be longer than time_on_air_s ({time_on_air_s!r}): "
            f"the next transmission starts after this one ends. / "
            f"interval_s({interval_s!r})は time_on_air_s({time_on_air_s!r})より長くしてください"
            f"(次の送信はこの送信が終わってから始まります)。"
        )
    if cs >= _T108_REGIMES["long"][0]:
        regime = "long"
    elif cs >= _T108_REGIMES["short"][0]:
        regime = "short"
    else:
        raise ValueError(
            f"carrier_sense_s must be at least 128e-6 s (128 us) for a 920 MHz station that "
            f"listens before talking (ARIB STD-T108); got {carrier_sense_s!r}. / "
            f"920 MHz 帯でキャリアセンスを行う無線局では carrier_sense_s は 128e-6 秒(128 µs)"
            f"以上にしてください(ARIB STD-T108)。受け取った値: {carrier_sense_s!r}。"
        )
    cs_min, max_tx, min_pause, max_per_hour = _T108_REGIMES[regime]
    where = f"{_T108_SOURCE}, carrier sense >= {cs_min * 1e3:g} ms"
    rules = [
        RuleResult("single transmission time", toa <= max_tx, toa, max_tx, "s", where),
        RuleResult(
            "pause after transmission", interval - toa >= min_pause, interval - toa, min_pause, "s", where
        ),
    ]
    if max_per_hour is not None:
        per_hour = toa * 3600.0 / interval
        rules.append(
            RuleResult(
                "total transmission time per hour",
                per_hour <= max_per_hour,
                per_hour,
                max_per_hour,
                "s/h",
                where,
            )
        )
    return T108Report(regime=regime, rules=tuple(rules))


def battery_life_days(
    capacity_mAh: float,
    tx_current_mA: float,
    time_on_air_s: float,
    interval_s: float,
    sleep_current_uA: float,
    rx_current_mA: float = 0.0,
    rx_time_s: float = 0.0,
    self_discharge_per_year: float = 0.0,
) -> float:
    """Days a duty-cycled station runs on a battery, from its average current.

    Each cycle of ``interval_s`` seconds the station transmits for ``time_on_air_s`` at
    ``tx_current_mA``, listens for ``rx_time_s`` at ``rx_current_mA`` (LoRaWAN class A opens
    two receive windows, RX1 and RX2, after every uplink), and sleeps the rest of the cycle at
    ``sleep_current_uA``::

        I_avg = (I_tx t_tx + I_rx t_rx + I_sleep (T - t_tx - t_rx)) / T
        I_sd  = capacity * self_discharge_per_year / 8760 h
        days  = capacity / (I_avg + I_sd) / 24

    Parameters
    ----------
    capacity_mAh : float
        Usable battery capacity.
    tx_current_mA, time_on_air_s : float
        Current while transmitting (or, more generally, while awake and busy) and for how long
        per cycle. For a whole "wake, measure, send" burst pass the burst's current and length.
    interval_s : float
        Cycle length (time between transmissions).
    sleep_current_uA : float
        Sleep current in microamperes (note the unit: datasheets give it in µA).
    rx_current_mA, rx_time_s : float, default 0
        Receive-window current and total receive time per cycle.
    self_discharge_per_year : float, default 0
        Fraction of the capacity lost per year on the shelf (lithium primary cells are of the
        order of 0.01, i.e. 1 %/year: take the figure from the cell's datasheet); modelled as a
        constant extra drain, a linear approximation.

    Returns
    -------
    float
        Battery life in days. Ignores temperature, voltage cut-off and pulse-current derating,
        so treat it as an upper bound.

    Examples
    --------
    >>> round(battery_life_days(2000, 120, 1.5, 600, 10))  # 2,000 mAh, a 1.5 s burst every 10 min
    269
    """
    capacity = _check_positive("capacity_mAh", capacity_mAh)
    i_tx = _check_positive("tx_current_mA", tx_current_mA, allow_zero=True)
    t_tx = _check_positive("time_on_air_s", time_on_air_s, allow_zero=True)
    period = _check_positive("interval_s", interval_s)
    i_sleep_mA = _check_positive("sleep_current_uA", sleep_current_uA, allow_zero=True) / 1000.0
    i_rx = _check_positive("rx_current_mA", rx_current_mA, allow_zero=True)
    t_rx = _check_positive("rx_time_s", rx_time_s, allow_zero=True)
    sd = _check_positive("self_discharge_per_year", self_discharge_per_year, allow_zero=True)
    if sd >= 1:
        raise ValueError(
            f"self_discharge_per_year is a fraction per year (0.01 = 1 %), below 1; got "
            f"{self_discharge_per_year!r}. / self_discharge_per_year は 1 年あたりの割合"
            f"(0.01 = 1 %)で、1 未満にしてください(受け取った値: {self_discharge_per_year!r})。"
        )
    if t_tx + t_rx > period:
        raise ValueError(
            f"time_on_air_s + rx_time_s ({t_tx + t_rx:g} s) must not exceed interval_s "
            f"({period:g} s): the station cannot be busy longer than a cycle. / "
            f"time_on_air_s + rx_time_s({t_tx + t_rx:g} 秒)は interval_s({period:g} 秒)"
            f"以下にしてください(1 周期より長く動作することはできません)。"
        )
    sleep_s = period - t_tx - t_rx
    average_mA = (i_tx * t_tx + i_rx * t_rx + i_sleep_mA * sleep_s) / period
    average_mA += capacity * sd / (365.0 * 24.0)
    if average_mA <= 0:
        raise ValueError(
            "The station draws no current at all, so the battery life is unbounded; give a "
            "sleep or transmit current. / 消費電流がゼロのため電池寿命が無限大になります。"
            "スリープ電流か送信電流を指定してください。"
        )
    return capacity / average_mA / 24.0
