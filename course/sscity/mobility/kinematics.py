"""Differential-drive kinematics: wheels <-> body twist, limits, exact unicycle integration.

A differential-drive device (Qolo, most wheelchairs) has two driven wheels of radius ``r``
a track width ``L`` apart. Its body twist -- forward speed ``v`` and yaw rate ``omega`` --
follows from the wheel speeds ``w_left`` and ``w_right`` (rad/s):

    v     = r (w_right + w_left) / 2
    omega = r (w_right - w_left) / L

and back:

    w_left  = (v - omega L / 2) / r
    w_right = (v + omega L / 2) / r

Over a step ``dt`` with constant ``v`` and ``omega`` the device drives exactly along a
circular arc. Writing ``dtheta = omega dt``, the chord has length
``v dt sinc(dtheta / 2)`` and points along ``theta + dtheta / 2``, which is exact for every
``omega`` and needs no special case at ``omega -> 0`` (the straight line).

Conventions: a pose is ``(x_m, y_m, theta_rad)`` in a right-handed world frame, ``theta``
measured from +x towards +y; headings are *not* wrapped (use :func:`wrap_angle`).

Run ``python -m sscity.mobility.kinematics`` for the closed-form check:
from the origin heading +x, ``v = 1 m/s`` and ``omega = 0.3 rad/s`` for 10 s end at
``(sin 3 / 0.3, (1 - cos 3) / 0.3) = (0.4704, 6.6333)`` with heading 3.0 rad.
"""

from __future__ import annotations

import numpy as np

from .params import QOLO, QoloParams

__all__ = [
    "body_twist",
    "integrate_unicycle",
    "limit_acceleration",
    "rollout",
    "saturate_twist",
    "wheel_speeds",
    "wrap_angle",
]


def wrap_angle(angle_rad):
    """Wrap angles to ``[-pi, pi)``."""
    return (np.asarray(angle_rad, dtype=float) + np.pi) % (2.0 * np.pi) - np.pi


def wheel_speeds(speed_mps, yaw_rate_radps, params: QoloParams = QOLO):
    """Wheel angular speeds ``(left_radps, right_radps)`` for a body twist.

    Parameters
    ----------
    speed_mps : float or array
        Forward speed ``v`` of the axle centre.
    yaw_rate_radps : float or array
        Yaw rate ``omega`` (positive = counter-clockwise, turning left).
    params : QoloParams, default QOLO
        Supplies ``wheel_radius_m`` and ``track_width_m``.

    Returns
    -------
    left_radps, right_radps : float or array

    Examples
    --------
    >>> wheel_speeds(1.0, 0.0)  # doctest: +ELLIPSIS
    (6.57..., 6.57...)
    """
    v = np.asarray(speed_mps, dtype=float)
    w = np.asarray(yaw_rate_radps, dtype=float)
    half = 0.5 * params.track_width_m
    left = (v - w * half) / params.wheel_radius_m
    right = (v + w * half) / params.wheel_radius_m
    return _scalar(left), _scalar(right)


def body_twist(left_radps, right_radps, params: QoloParams = QOLO):
    """Body twist ``(speed_mps, yaw_rate_radps)`` from the wheel angular speeds."""
    left = np.asarray(left_radps, dtype=float)
    right = np.asarray(right_radps, dtype=float)
    r = params.wheel_radius_m
    return _scalar(0.5 * r * (right + left)), _scalar(r * (right - left) / params.track_width_m)


def saturate_twist(speed_mps, yaw_rate_radps, params: QoloParams = QOLO):
    """Scale a twist down to the device's limits, keeping its curvature ``omega / v``.

    Both wheel speeds are scaled by one factor ``s <= 1`` -- the largest that keeps each
    wheel within its limit (95 rpm), ``|v|`` within ``max_speed_mps`` and ``|omega|``
    within ``max_yaw_rate_radps``. Scaling both wheels together keeps the path's shape:
    clipping each wheel on its own would turn the device onto a different arc.

    Returns
    -------
    speed_mps, yaw_rate_radps : float or array
        ``s * v`` and ``s * omega``.

    Examples
    --------
    >>> v, w = saturate_twist(3.0, 1.0)
    >>> round(v, 3), round(w / v, 4)   # curvature 1/3 kept
    (1.386, 0.3333)
    """
    if isinstance(speed_mps, float | int) and isinstance(yaw_rate_radps, float | int):
        return _saturate_scalar(float(speed_mps), float(yaw_rate_radps), params)
    v = np.asarray(speed_mps, dtype=float)
    w = np.asarray(yaw_rate_radps, dtype=float)
    left, right = wheel_speeds(v, w, params)
    fastest = np.maximum(np.abs(left), np.abs(right))
    with np.errstate(divide="ignore"):
        scale = np.minimum.reduce(
            [
                np.ones_like(fastest),
                np.where(fastest > 0, params.wheel_limit_radps / fastest, 1.0),
                np.where(np.abs(v) > 0, params.max_speed_mps / np.abs(v), 1.0),
                np.where(np.abs(w) > 0, params.max_yaw_rate_radps / np.abs(w), 1.0),
            ]
        )
    return _scalar(v * scale), _scalar(w * scale)


def _saturate_scalar(v: float, w: float, params: QoloParams) -> tuple[float, float]:
    """:func:`saturate_twist` for two Python floats (the controllers' hot path)."""
    half, r = 0.5 * params.track_width_m, params.wheel_radius_m
    fastest = max(abs(v - w * half), abs(v + w * half)) / r
    scale = 1.0
    if fastest > params.wheel_limit_radps:
        scale = params.wheel_limit_radps / fastest
    if abs(v) * scale > params.max_speed_mps:
        scale = params.max_speed_mps / abs(v)
    if abs(w) * scale > params.max_yaw_rate_radps:
        scale = params.max_yaw_rate_radps / abs(w)
    return v * scale, w * scale


def limit_acceleration(
    speed_mps, yaw_rate_radps, previous_speed_mps, previous_yaw_rate_radps, dt_s, params: QoloParams = QOLO
):
    """Move from the previous twist towards the commanded one within the acceleration limits.

    The change in ``v`` is clipped to ``max_accel_mps2 * dt`` and the change in ``omega`` to
    ``max_yaw_accel_radps2 * dt`` (1.5 m/s^2 and 4.5 rad/s^2 for Qolo).

    Returns
    -------
    speed_mps, yaw_rate_radps : float
    """
    _check_dt(dt_s)
    dv_max = params.max_accel_mps2 * dt_s
    dw_max = params.max_yaw_accel_radps2 * dt_s
    if all(
        isinstance(a, float | int)
        for a in (speed_mps, yaw_rate_radps, previous_speed_mps, previous_yaw_rate_radps)
    ):
        dv = min(max(speed_mps - previous_speed_mps, -dv_max), dv_max)
        dw = min(max(yaw_rate_radps - previous_yaw_rate_radps, -dw_max), dw_max)
        return float(previous_speed_mps + dv), float(previous_yaw_rate_radps + dw)
    v = previous_speed_mps + np.clip(speed_mps - previous_speed_mps, -dv_max, dv_max)
    w = previous_yaw_rate_radps + np.clip(yaw_rate_radps - previous_yaw_rate_radps, -dw_max, dw_max)
    return _scalar(np.asarray(v, dtype=float)), _scalar(np.asarray(w, dtype=float))


def integrate_unicycle(pose, speed_mps, yaw_rate_radps, dt_s):
    """Exact pose after driving ``dt_s`` seconds at a constant twist (a circular arc).

    Parameters
    ----------
    pose : array-like, shape (3,) or (n, 3)
        ``(x_m, y_m, theta_rad)``.
    speed_mps, yaw_rate_radps : float or array of shape (n,)
        The constant twist over the step.
    dt_s : float
        Step length in seconds (> 0).

    Returns
    -------
    ndarray, same shape as ``pose``
        The new pose; ``theta`` is not wrapped.

    Examples
    --------
    >>> np.round(integrate_unicycle([0, 0, 0], 1.0, 0.3, 10.0), 4)
    array([0.4704, 6.6333, 3.    ])
    """
    _check_dt(dt_s)
    pose = np.asarray(pose, dtype=float)
    if pose.shape[-1] != 3:
        raise ValueError(f"A pose is (x_m, y_m, theta_rad); got an array of shape {pose.shape}.")
    x, y, theta = pose[..., 0], pose[..., 1], pose[..., 2]
    dtheta = np.asarray(yaw_rate_radps, dtype=float) * dt_s
    # sinc(z) = sin(pi z) / (pi z), so np.sinc(dtheta / (2 pi)) = sin(dtheta/2) / (dtheta/2).
    chord = np.asarray(speed_mps, dtype=float) * dt_s * np.sinc(dtheta / (2.0 * np.pi))
    mid = theta + 0.5 * dtheta
    return np.stack([x + chord * np.cos(mid), y + chord * np.sin(mid), theta + dtheta], axis=-1)


def rollout(pose, speeds_mps, yaw_rates_radps, dt_s):
    """Integrate a sequence of twists held for ``dt_s`` each; returns the ``(n + 1, 3)`` poses.

    The first row is the start pose; row ``k + 1`` is the pose after command ``k``.
    """
    speeds = np.atleast_1d(np.asarray(speeds_mps, dtype=float))
    rates = np.atleast_1d(np.asarray(yaw_rates_radps, dtype=float))
    speeds, rates = np.broadcast_arrays(speeds, rates)
    if speeds.ndim != 1:
        raise ValueError("speeds_mps and yaw_rates_radps must be 1-D sequences of equal length.")
    out = np.empty((len(speeds) + 1, 3))
    out[0] = np.asarray(pose, dtype=float)
    for k in range(len(speeds)):
        out[k + 1] = integrate_unicycle(out[k], speeds[k], rates[k], dt_s)
    return out


def _check_dt(dt_s) -> None:
    if not np.isfinite(dt_s) or dt_s <= 0:
        raise ValueError(f"dt_s must be a positive number of seconds; got {dt_s!r}.")


def _scalar(a: np.ndarray):
    return float(a) if np.ndim(a) == 0 else a


def main() -> None:
    """The closed-form check of the module docstring."""
    end = integrate_unicycle([0.0, 0.0, 0.0], 1.0, 0.3, 10.0)
    stepped = rollout([0.0, 0.0, 0.0], np.full(2400, 1.0), 0.3, 1 / 240)[-1]
    print("one step   :", np.round(end, 4))
    print("2400 steps :", np.round(stepped, 4))
    print("closed form:", np.round([np.sin(3) / 0.3, (1 - np.cos(3)) / 0.3, 3.0], 4))
    print("wheels at v=1, w=0.3:", np.round(wheel_speeds(1.0, 0.3), 3), "rad/s")
    print("saturated (3 m/s, 1 rad/s):", np.round(saturate_twist(3.0, 1.0), 3))


if __name__ == "__main__":
    main()
