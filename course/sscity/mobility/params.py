"""Qolo's published parameters, in one place.

Qolo is the standing-type personal mobility device of the University of Tsukuba (later
developed with EPFL LASA in the CrowdBot project): a passive exoskeleton with gas springs
lets the rider rise from sitting to standing; two in-wheel motors drive it like a
differential-drive robot; a rear caster carries part of the load.

Sources (also in the facts table of ``solutions/04-mobility-control/README.md``):

- Suzuki, "Qolo", IEEE Robotics & Automation Magazine, 2016, doi:10.1109/MRA.2015.2511684.
- Paez-Granados, Kadone, Suzuki, IROS 2018 (the sit-to-stand exoskeleton).
- Chen et al., IROS 2020 (hands-free torso control).
- Paez-Granados et al., IEEE/ASME Transactions on Mechatronics, 2022 (mass, centre of
  mass, contact force limits).
- Gonon, Paez-Granados, Billard, IEEE RA-L 6(3), 2021 (reactive driving support, "RDS";
  the capsule footprint and the drive limits used by the real-robot controller).

Everything in :data:`QOLO` is **published** except where a field's comment says
*assumed*. The seated / standing split of the centre of mass is partly assumed: see
:class:`QoloConfig`.

Run ``python -m sscity.mobility.params`` to print the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CONFIGS", "GRAVITY_MPS2", "QOLO", "QoloConfig", "QoloParams", "get_config"]

GRAVITY_MPS2 = 9.81


@dataclass(frozen=True)
class QoloConfig:
    """Mass and centre of mass of the device with (or without) its rider.

    The centre of mass (CoM) is given relative to the wheel axle: ``com_behind_axle_m``
    is the horizontal distance *behind* the axle (towards the rear caster),
    ``com_height_m`` the height above the ground.

    Which numbers are published and which are assumed:

    - ``"empty"`` -- **published**: 53 kg, CoM 0.150 m behind the axle, 0.180 m up.
    - ``"seated"`` -- **published** numbers for the device with a 70 kg rider: 120 kg,
      CoM 0.210 m behind the axle, 0.585 m up. The source does not state the posture;
      a back-of-envelope check (53 kg at 0.18 m plus a 67 kg rider whose CoM sits about
      0.9 m up, i.e. perched on Qolo's high seat) reproduces 0.585 m, so we *assume* these
      are the seated numbers -- the lower of the two postures.
    - ``"standing"`` -- **assumed**: same 120 kg; standing up lifts the rider's CoM by about
      0.25 m (hip from seat height to standing height), which lifts the combined CoM by
      ``67 / 120 * 0.25 = 0.14 m`` to 0.725 m. The rider stands over the footplate, so we
      keep the horizontal offset at 0.210 m (assumed unchanged).

    Parameters
    ----------
    name : str
        ``"empty"``, ``"seated"`` or ``"standing"``.
    mass_kg : float
        Total mass, device and rider, including both wheels.
    com_behind_axle_m : float
        Horizontal distance of the CoM behind the wheel axle (positive = towards the rear).
    com_height_m : float
        Height of the CoM above level ground.
    published : bool
        True if all three numbers are published; False if any is assumed.
    note : str
        Where the numbers come from.
    """

    name: str
    mass_kg: float
    com_behind_axle_m: float
    com_height_m: float
    published: bool
    note: str = ""

    def __post_init__(self):
        if self.mass_kg <= 0 or self.com_height_m <= 0:
            raise ValueError(f"QoloConfig {self.name!r}: mass_kg and com_height_m must be > 0.")


CONFIGS: dict[str, QoloConfig] = {
    "empty": QoloConfig("empty", 53.0, 0.150, 0.180, True, "published: device without rider (TMECH 2022)"),
    "seated": QoloConfig(
        "seated",
        120.0,
        0.210,
        0.585,
        True,
        "published with a 70 kg rider (TMECH 2022); posture assumed seated",
    ),
    "standing": QoloConfig(
        "standing", 120.0, 0.210, 0.725, False, "assumed: rider CoM +0.25 m when standing -> combined +0.14 m"
    ),
}


def get_config(config: str | QoloConfig) -> QoloConfig:
    """Return a :class:`QoloConfig` from its name, or pass one through unchanged."""
    if isinstance(config, QoloConfig):
        return config
    try:
        return CONFIGS[config]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown Qolo configuration {config!r}; choose one of {sorted(CONFIGS)} or pass a QoloConfig."
        ) from None


@dataclass(frozen=True)
class QoloParams:
    """Drive, footprint and safety parameters of Qolo (published unless noted).

    Attributes
    ----------
    wheel_radius_m : float
        0.152 m (RDS real-robot controller, RA-L 2021).
    track_width_m : float
        Distance between the wheel contact points, 0.548 m (same source).
    gear_ratio : float
        12.64 (same source).
    wheel_limit_rpm : float
        95 rpm at the wheel; ``2*pi*95/60 * 0.152 = 1.51`` -> rounded to 1.5 m/s.
    max_speed_mps : float
        1.5 m/s (5.4 km/h), below the 6 km/h limit for powered wheelchairs in Japan.
    max_yaw_rate_radps : float
        4.124 rad/s (same source).
    max_accel_mps2, max_yaw_accel_radps2 : float
        Acceleration limits used on the real robot: 1.5 m/s^2 and 4.5 rad/s^2.
    footprint_radius_m : float
        Collision capsule radius, 0.4 m (RDS).
    footprint_front_m, footprint_rear_m : float
        The capsule's segment runs along the body x axis from +0.05 m (front) to -0.5 m
        (rear) of the axle centre.
    contact_force_limit_n : float
        45 N, the contact force the compliant controller allows (TMECH 2022).
    max_contact_speed_mps : float
        0.5 m/s, the highest speed at which contact with a person is tolerated.
    wheel_mass_kg : float
        1.5 kg per wheel (TMECH 2022).
    rear_caster_x_m : float
        *Assumed*: the rear caster's contact point, 0.45 m behind the axle (inside the
        capsule; the source gives no figure).
    """

    wheel_radius_m: float = 0.152
    track_width_m: float = 0.548
    gear_ratio: float = 12.64
    wheel_limit_rpm: float = 95.0
    max_speed_mps: float = 1.5
    max_yaw_rate_radps: float = 4.124
    max_accel_mps2: float = 1.5
    max_yaw_accel_radps2: float = 4.5
    footprint_radius_m: float = 0.4
    footprint_front_m: float = 0.05
    footprint_rear_m: float = -0.5
    contact_force_limit_n: float = 45.0
    max_contact_speed_mps: float = 0.5
    wheel_mass_kg: float = 1.5
    rear_caster_x_m: float = -0.45  # assumed

    @property
    def wheel_limit_radps(self) -> float:
        """The wheel speed limit in rad/s (95 rpm = 9.95 rad/s)."""
        return self.wheel_limit_rpm * 2.0 * math.pi / 60.0

    @property
    def wheel_limit_mps(self) -> float:
        """Rim speed at the wheel limit, ``r * omega_max`` = 1.512 m/s."""
        return self.wheel_limit_radps * self.wheel_radius_m

    @property
    def motor_limit_rpm(self) -> float:
        """Motor-side speed at the wheel limit (``95 * 12.64`` = 1200.8 rpm)."""
        return self.wheel_limit_rpm * self.gear_ratio


#: Qolo's parameters (frozen). ``QOLO.max_speed_mps`` -> 1.5.
QOLO = QoloParams()


def main() -> None:
    """Print the parameters and the configurations."""
    for name in QoloParams.__dataclass_fields__:
        print(f"{name:24s} {getattr(QOLO, name)}")
    print(f"{'wheel_limit_mps':24s} {QOLO.wheel_limit_mps:.3f}")
    for config in CONFIGS.values():
        kind = "published" if config.published else "assumed"
        print(
            f"{config.name:9s} {config.mass_kg:5.1f} kg  CoM {config.com_behind_axle_m:.3f} m behind, "
            f"{config.com_height_m:.3f} m up  ({kind})"
        )


if __name__ == "__main__":
    main()
