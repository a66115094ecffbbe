"""Static tip-over stability: why standing up changes how hard the device may brake.

A body resting on a support polygon tips over an edge of it when the moment of the loads
about that edge changes sign. For a device braking at deceleration ``a`` on level ground,
the inertial load ``m a`` acts at the centre of mass (CoM), ``h`` above the ground, and
gravity ``m g`` acts ``d`` behind the front support line. It tips forward when

    a h > g d        so the largest safe deceleration is   a_max = g d / h.

On a slope of angle ``alpha`` (positive when the device faces uphill), working in the
slope's frame, gravity splits into ``g cos(alpha)`` into the slope and ``g sin(alpha)`` along
it, which shifts the CoM's projection by ``h tan(alpha)`` along the slope:

    forward margin   d_f + h tan(alpha)          a_max,brake = g (d_f cos(alpha) + h sin(alpha)) / h
    backward margin  d_r - h tan(alpha)          a_max,accel = g (d_r cos(alpha) - h sin(alpha)) / h

Facing *downhill* (``alpha < 0``) the forward margin shrinks: braking downhill is the
critical case. Standing raises ``h`` and so lowers every limit.

For Qolo the front support line is the wheel axle (the wheel contact points), ``d_f`` is the
CoM's distance behind the axle, and the rear support is the rear caster at
``QOLO.rear_caster_x_m`` (-0.45 m, *assumed*), so ``d_r = 0.45 - d_f``. These are *static*
(quasi-static) limits: they ignore suspension, tyre compliance, the anti-tip caster and the
rider's own reaction, so treat them as upper bounds, not guarantees.

Run ``python -m sscity.mobility.stability`` for the table of limits.
"""

from __future__ import annotations

import math

import pandas as pd

from .params import CONFIGS, GRAVITY_MPS2, QOLO, QoloConfig, QoloParams, get_config

__all__ = [
    "max_safe_acceleration",
    "max_safe_deceleration",
    "slope_angle",
    "stability_table",
    "static_margin",
    "support_distances",
    "tip_over_deceleration",
    "tip_over_slope_percent",
]


def slope_angle(slope_percent: float) -> float:
    """Angle (rad) of a slope given as rise over run in percent (8.33 % = 1:12 -> 0.0831 rad)."""
    return math.atan(slope_percent / 100.0)


def tip_over_deceleration(
    distance_m: float, height_m: float, slope_rad: float = 0.0, g_mps2: float = GRAVITY_MPS2
) -> float:
    """Deceleration at which a body tips over a support line ``distance_m`` ahead of its CoM.

    ``a_max = g (d cos(alpha) + h sin(alpha)) / h``; on level ground ``g d / h``. ``slope_rad``
    is positive when the support line is uphill of the CoM (facing uphill for the front
    edge). A negative result means the body already tips without any deceleration.

    Examples
    --------
    >>> round(tip_over_deceleration(0.21, 0.585), 3)      # seated Qolo, level
    3.522
    """
    if height_m <= 0:
        raise ValueError("height_m (centre-of-mass height) must be > 0.")
    return g_mps2 * (distance_m * math.cos(slope_rad) + height_m * math.sin(slope_rad)) / height_m


def support_distances(config: str | QoloConfig = "seated", params: QoloParams = QOLO) -> tuple[float, float]:
    """``(d_front, d_rear)``: horizontal distances (m) from the CoM to the front and rear support lines."""
    cfg = get_config(config)
    d_front = cfg.com_behind_axle_m
    d_rear = -params.rear_caster_x_m - cfg.com_behind_axle_m
    if d_front <= 0 or d_rear <= 0:
        raise ValueError(
            f"The CoM of {cfg.name!r} lies outside the support (d_front={d_front:.3f} m, "
            f"d_rear={d_rear:.3f} m): the device would tip over standing still."
        )
    return d_front, d_rear


def static_margin(
    config: str | QoloConfig = "seated",
    slope_percent: float = 0.0,
    direction: str = "forward",
    params: QoloParams = QOLO,
) -> float:
    """Distance (m) from the CoM's projection to the support line it would tip over.

    Parameters
    ----------
    config : {"seated", "standing", "empty"} or QoloConfig
    slope_percent : float, default 0
        Slope in percent, **positive when the device faces uphill**, negative downhill.
    direction : {"forward", "backward"}
        Tipping over the front support (the wheels) or the rear (the caster).

    Returns
    -------
    float
        ``d_f + h tan(alpha)`` forward, ``d_r - h tan(alpha)`` backward; negative = tips
        over standing still.

    Examples
    --------
    >>> round(static_margin("seated", -8.33), 4)      # facing down a 1:12 ramp
    0.1613
    """
    cfg = get_config(config)
    d_front, d_rear = support_distances(cfg, params)
    shift = cfg.com_height_m * slope_percent / 100.0  # h tan(alpha)
    if direction == "forward":
        return d_front + shift
    if direction == "backward":
        return d_rear - shift
    raise ValueError(f"direction must be 'forward' or 'backward'; got {direction!r}.")


def max_safe_deceleration(
    config: str | QoloConfig = "seated", slope_percent: float = 0.0, params: QoloParams = QOLO
) -> float:
    """Largest braking deceleration (m/s^2) before tipping forward, driving forward on a slope.

    ``slope_percent`` is positive uphill, negative downhill (the critical case).

    Examples
    --------
    >>> round(max_safe_deceleration("standing"), 3), round(max_safe_deceleration("seated"), 3)
    (2.842, 3.522)
    """
    cfg = get_config(config)
    d_front, _ = support_distances(cfg, params)
    return tip_over_deceleration(d_front, cfg.com_height_m, slope_angle(slope_percent))


def max_safe_acceleration(
    config: str | QoloConfig = "seated", slope_percent: float = 0.0, params: QoloParams = QOLO
) -> float:
    """Largest forward acceleration (m/s^2) before tipping backward over the rear caster.

    ``slope_percent`` is positive uphill (the critical case here), negative downhill.
    """
    cfg = get_config(config)
    _, d_rear = support_distances(cfg, params)
    return tip_over_deceleration(d_rear, cfg.com_height_m, -slope_angle(slope_percent))


def tip_over_slope_percent(
    config: str | QoloConfig = "seated", direction: str = "forward", params: QoloParams = QOLO
) -> float:
    """Steepest slope (%) on which the device stands still without tipping: ``100 d / h``.

    Forward = facing downhill, tipping over the wheels; backward = facing uphill.
    """
    cfg = get_config(config)
    d_front, d_rear = support_distances(cfg, params)
    d = {"forward": d_front, "backward": d_rear}.get(direction)
    if d is None:
        raise ValueError(f"direction must be 'forward' or 'backward'; got {direction!r}.")
    return 100.0 * d / cfg.com_height_m


def stability_table(
    slopes_percent=(-8.33, -5.0, 0.0, 5.0, 8.33), configs=("seated", "standing"), params: QoloParams = QOLO
) -> pd.DataFrame:
    """Margins and limits per configuration and slope, compared with the 1.5 m/s^2 drive limit.

    Columns: ``config``, ``slope_percent``, ``forward_margin_m``, ``backward_margin_m``,
    ``max_deceleration_mps2``, ``max_acceleration_mps2``, ``brake_safety_factor``
    (``max_deceleration / max_accel_mps2``; below 1 means the drive limit can tip the device).
    """
    rows = []
    for name in configs:
        for slope in slopes_percent:
            a_brake = max_safe_deceleration(name, slope, params)
            rows.append(
                {
                    "config": name,
                    "slope_percent": float(slope),
                    "forward_margin_m": static_margin(name, slope, "forward", params),
                    "backward_margin_m": static_margin(name, slope, "backward", params),
                    "max_deceleration_mps2": a_brake,
                    "max_acceleration_mps2": max_safe_acceleration(name, slope, params),
                    "brake_safety_factor": a_brake / params.max_accel_mps2,
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    """Print the stability table."""
    with pd.option_context("display.width", 160, "display.max_columns", None, "display.precision", 3):
        print(stability_table(configs=tuple(CONFIGS)))


if __name__ == "__main__":
    main()
