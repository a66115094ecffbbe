"""A pybullet world for a Qolo-like device, built from primitives only.

Nothing is loaded from files: no URDF, no ``pybullet_data`` assets, no network. The
device is one ``createMultiBody`` call:

- the **base**: a box chassis with two sphere casters (one at the rear that carries part
  of the load, one small anti-tip sphere in front), all with zero friction. The casters sit
  ``caster_lift_m`` (5 mm) above the ground when the chassis is level, so the driven wheels
  always carry their share of the weight; with the centre of mass behind the axle the
  chassis pitches back by about 0.6 degrees onto the rear caster. (Casters at wheel height
  over-constrain the contact and the wheels slip: 2.49 rad instead of 3.0 after the 10-s
  turning test.)
- two **driven wheels**: cylinders of radius 0.152 m, 0.548 m apart, 1.5 kg each, on
  revolute joints, friction 1.0, driven in ``VELOCITY_CONTROL`` with
  ``targetVelocities = [(v - omega L/2)/r, (v + omega L/2)/r]``. The wheels *look* 5 cm wide,
  but their collision cylinders are only ``tread_width_m`` (2 mm) wide: a real tyre's tread
  is rounded and touches the ground in the middle, whereas Bullet lets a flat cylinder touch
  the ground at one rim edge. With 5-cm collision cylinders both wheels rolled on their
  right-hand edges, which moved the rolling contact 2.4 cm sideways off the axle centre:
  every left turn came out tighter and every right turn wider than commanded (a commanded
  radius of 0.15 m gave 0.12 m). Pass ``tread_width_m=0.05`` to see it.

The total mass and the centre of mass match the chosen :class:`~sscity.mobility.params.QoloConfig`
(the base's inertial frame is shifted so that base + wheels put the CoM where published).
The base inertia is that of a uniform box around device and rider (*assumed*).

Pedestrians are *kinematic* cylinders (mass 0) moved with ``resetBasePositionAndOrientation``:
physics pushes the device away from them but never moves them. Their contacts are compliant
(5 kN/m, assumed), as a body is: rigid ones shove the device over when a crowd walks into it.
Walls, ramps and curbs are static boxes.

Contacts: after every physics step the world asks for the contact points of the device and
keeps, per watched body (pedestrians and walls, never the floor, ramps or curbs), whether the
two touch. A *contact onset* is a transition from not touching to touching. A rigid bump
makes the contact flicker for a few hundred milliseconds (the device bounces off an
immovable pedestrian), so a pair counts as separated again only after ``contact_release_s``
(0.5 s) without any contact point; set it to 0 to count every raw transition.

Every world opens its own DIRECT connection and starts from ``resetSimulation``; two worlds
built with the same arguments and driven with the same commands give bitwise-identical poses.

Run ``python -m sscity.mobility.world`` for the tracking checks against ideal kinematics.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .kinematics import saturate_twist
from .metrics import capsule_distance
from .params import GRAVITY_MPS2, QOLO, QoloConfig, QoloParams, get_config


@contextlib.contextmanager
def _c_output_silenced():
    """Send the process's C-level stdout and stderr to /dev/null for a moment: pybullet prints
    "pybullet build time: ..." on stderr when imported and "argv[0]=" on stdout when a
    client connects, which a notebook shows under the cell (stderr as a red band)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
    except (AttributeError, OSError, ValueError):  # no real file descriptors: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


with _c_output_silenced():
    import pybullet as pb
    from pybullet_utils import bullet_client

__all__ = ["ContactEvent", "QoloSim"]

# Colours (Okabe-Ito, RGBA) for the renderer.
_DEVICE_RGBA = (0.0, 0.447, 0.698, 1.0)  # blue
_RIDER_RGBA = (0.337, 0.706, 0.914, 1.0)  # sky blue
_WHEEL_RGBA = (0.1, 0.1, 0.1, 1.0)
_PEDESTRIAN_RGBA = (0.835, 0.369, 0.0, 1.0)  # vermillion
_WALL_RGBA = (0.6, 0.6, 0.6, 1.0)
_RAMP_RGBA = (0.0, 0.62, 0.451, 1.0)  # bluish green
_CURB_RGBA = (0.902, 0.624, 0.0, 1.0)  # orange
_FLOOR_RGBA = (0.92, 0.92, 0.92, 1.0)

# Chassis geometry (assumed; the sources give the footprint capsule, not a drawing).
_CHASSIS_HALF = (0.26, 0.20, 0.06)  # half extents of the box, m
_CHASSIS_CENTRE = (-0.21, 0.0, 0.0)  # relative to the axle centre
_REAR_CASTER = 0.05  # radius, m
_FRONT_CASTER = 0.03
_FRONT_CASTER_X = 0.12
_FRONT_CASTER_LIFT = 0.02  # anti-tip: touches only when pitching forward
_WHEEL_WIDTH = 0.05


@dataclass(frozen=True)
class ContactEvent:
    """One contact onset: the device started touching ``body`` at ``time_s``."""

    time_s: float
    body: int
    kind: str  # "pedestrian" or "wall"


class QoloSim:
    """A headless pybullet world holding one Qolo-like device.

    Parameters
    ----------
    seed : int, default 0
        Seed of :attr:`rng`, used by every random choice of the world (the measurement
        noise of :meth:`measured_pose`). The physics itself is deterministic.
    config : {"seated", "standing", "empty"} or QoloConfig, default "seated"
        Mass and centre of mass (see :class:`~sscity.mobility.params.QoloConfig`).
    time_step : float, default 1/240
        Physics step in seconds (pybullet's default; keep it).
    params : QoloParams, default QOLO
        Wheel radius, track width, wheel limit.
    wheel_friction : float, default 1.0
        Lateral friction coefficient of the driven wheels.
    motor_torque_nm : float, default 60.0
        Largest torque each wheel motor may apply (*assumed*). Two motors give about 790 N of
        drive force, more than the tyres can pass on. In *this model* -- the seated
        configuration, the assumed rear-caster position (47 % of the weight on the caster),
        tyre friction 1.0 and pybullet's contact solver -- a step command from rest to 1 m/s
        accelerates at about 2.2 m/s^2 at most and reaches 1 m/s in 0.45 s. That figure is a
        property of the simulation with these stated parameters, not a general fact about
        Qolo or about wheelchairs: another caster position, tyre or rider changes it.
        Acceleration *limits* belong to the controller
        (:class:`~sscity.mobility.control.RateLimiter`); the yaw rates the device can actually
        follow with a rider are measured in :mod:`~sscity.mobility.envelope`.
    caster_lift_m : float, default 0.005
        Height of the casters above level ground when the chassis is level.
    tread_width_m : float, default 0.002
        Width of the wheels' *collision* cylinders (the line where a rounded tyre touches the
        ground; the drawn wheels stay 5 cm wide). The rolling contact may still sit on one
        edge, 1 mm off the wheel's mid-plane. 0.05 restores the flat 5-cm cylinders, whose
        rolling contact sits on one rim edge, 2.5 cm off (see the module docstring).
    start_pose : (x_m, y_m, theta_rad), default (0, 0, 0)
        Where the device starts.
    contact_release_s : float, default 0.5
        How long a device-body pair must be apart before a new touch counts as a new onset.

    Examples
    --------
    >>> with QoloSim(seed=1) as sim:
    ...     sim.step(1.0, 0.0, n_steps=480)      # 2 s at a commanded 1 m/s
    ...     x, y, theta = sim.pose()
    ...     v, omega = sim.twist()
    >>> round(v, 2), bool(1.6 < x < 1.8)          # 0.45 s to get up to speed
    (1.0, True)
    """

    def __init__(
        self,
        seed: int = 0,
        config: str | QoloConfig = "seated",
        time_step: float = 1 / 240,
        params: QoloParams = QOLO,
        wheel_friction: float = 1.0,
        motor_torque_nm: float = 60.0,
        caster_lift_m: float = 0.005,
        start_pose: Sequence[float] = (0.0, 0.0, 0.0),
        contact_release_s: float = 0.5,
        tread_width_m: float = 0.002,
    ):
        if not (0 < time_step <= 0.05):
            raise ValueError(f"time_step must be in (0, 0.05] s; got {time_step!r}. Keep 1/240.")
        if motor_torque_nm <= 0 or wheel_friction < 0 or caster_lift_m < 0 or contact_release_s < 0:
            raise ValueError(
                "motor_torque_nm must be > 0; wheel_friction, caster_lift_m and "
                "contact_release_s must be >= 0."
            )
        if not (0 < tread_width_m <= 0.2):
            raise ValueError(f"tread_width_m must be in (0, 0.2] m; got {tread_width_m!r}.")
        self.tread_width_m = float(tread_width_m)
        self.contact_release_s = float(contact_release_s)
        self.config = get_config(config)
        self.params = params
        self.time_step = float(time_step)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.motor_torque_nm = float(motor_torque_nm)
        self.time_s = 0.0
        self.steps = 0

        with _c_output_silenced():  # BulletClient prints "argv[0]=" from C
            self.client = bullet_client.BulletClient(connection_mode=pb.DIRECT)
        c = self.client
        c.resetSimulation()
        c.setGravity(0, 0, -GRAVITY_MPS2)
        c.setTimeStep(self.time_step)
        # Pyramid (two-direction) friction instead of the friction cone: about 1.4x faster.
        # Measured with the commands passed through RateLimiter at every physics step (the
        # tests' and the lesson's turning test, v = 1 m/s, omega = 0.3 rad/s for 10 s): the
        # heading ends at 3.03 rad, 0.04 rad from the ideal rollout of the same commands
        # (2.99). Without the rate limiter the step to 1 m/s slips and the heading ends at
        # 2.91 rad (`python -m sscity.mobility.world` prints both).
        c.setPhysicsEngineParameter(deterministicOverlappingPairs=1, enableConeFriction=0)
        # Bound methods, fetched once: BulletClient builds a partial on every attribute access.
        self._step_simulation = c.stepSimulation
        self._contacts = c.getContactPoints
        self._reset_pose = c.resetBasePositionAndOrientation
        self._motors = c.setJointMotorControlArray
        self._base_pose = c.getBasePositionAndOrientation
        self._base_velocity = c.getBaseVelocity

        plane = c.createCollisionShape(pb.GEOM_PLANE)
        self.floor = c.createMultiBody(0, plane)
        c.changeDynamics(self.floor, -1, lateralFriction=1.0)
        c.changeVisualShape(self.floor, -1, rgbaColor=_FLOOR_RGBA)
        self.terrain: list[int] = []  # ramps and curbs: not counted as collisions
        self.pedestrians: list[int] = []
        self.walls: list[int] = []
        self._watched: dict[int, str] = {}  # body -> "pedestrian" | "wall"
        self._touching: set[int] = set()  # raw contact in the last step
        self._engaged: set[int] = set()  # in contact, or apart for < contact_release_s
        self._last_contact: dict[int, float] = {}
        self._heights: dict[int, float] = {}
        self._ped_xy = np.zeros((0, 2))
        self._ped_radius = 0.0
        self.contact_onsets: dict[int, int] = {}
        self.contact_events: list[ContactEvent] = []
        self.robot = self._build_device(wheel_friction, caster_lift_m, start_pose)
        self._wheel_joints = [0, 1]
        self._last_wheel_targets = (0.0, 0.0)

    # --- construction ------------------------------------------------------------------------

    def _build_device(self, wheel_friction: float, caster_lift: float, start_pose) -> int:
        c, P, cfg = self.client, self.params, self.config
        r, half_track = P.wheel_radius_m, 0.5 * P.track_width_m
        wheels_kg = 2.0 * P.wheel_mass_kg
        base_kg = cfg.mass_kg - wheels_kg
        if base_kg <= 0:
            raise ValueError(f"config {cfg.name!r}: mass_kg must exceed the two wheels ({wheels_kg} kg).")
        # Base CoM such that base + wheels (at the axle) put the total CoM where configured.
        com_x = -cfg.com_behind_axle_m * cfg.mass_kg / base_kg
        com_z = (cfg.com_height_m * cfg.mass_kg - wheels_kg * r) / base_kg - r

        rear_z = -r + _REAR_CASTER + caster_lift
        front_z = -r + _FRONT_CASTER + caster_lift + _FRONT_CASTER_LIFT
        base_collision = c.createCollisionShapeArray(
            shapeTypes=[pb.GEOM_BOX, pb.GEOM_SPHERE, pb.GEOM_SPHERE],
            radii=[0.0, _REAR_CASTER, _FRONT_CASTER],
            halfExtents=[list(_CHASSIS_HALF), [0, 0, 0], [0, 0, 0]],
            collisionFramePositions=[
                list(_CHASSIS_CENTRE),
                [P.rear_caster_x_m, 0.0, rear_z],
                [_FRONT_CASTER_X, 0.0, front_z],
            ],
        )
        rider_height = max(0.2, 2.0 * (cfg.com_height_m - r) - 0.1)
        base_visual = c.createVisualShapeArray(
            shapeTypes=[pb.GEOM_BOX, pb.GEOM_CYLINDER, pb.GEOM_SPHERE, pb.GEOM_SPHERE],
            radii=[0.0, 0.16, _REAR_CASTER, _FRONT_CASTER],
            halfExtents=[list(_CHASSIS_HALF), [0, 0, 0], [0, 0, 0], [0, 0, 0]],
            lengths=[0.0, rider_height, 0.0, 0.0],
            rgbaColors=[list(_DEVICE_RGBA), list(_RIDER_RGBA), list(_WHEEL_RGBA), list(_WHEEL_RGBA)],
            visualFramePositions=[
                list(_CHASSIS_CENTRE),
                [-cfg.com_behind_axle_m, 0.0, _CHASSIS_HALF[2] + 0.5 * rider_height],
                [P.rear_caster_x_m, 0.0, rear_z],
                [_FRONT_CASTER_X, 0.0, front_z],
            ],
        )
        # Narrow collision cylinders: the rolling contact stays under the wheel's mid-plane.
        wheel_collision = c.createCollisionShape(pb.GEOM_CYLINDER, radius=r, height=self.tread_width_m)
        wheel_visual = c.createVisualShape(
            pb.GEOM_CYLINDER, radius=r, length=_WHEEL_WIDTH, rgbaColor=_WHEEL_RGBA
        )
        # Cylinders are along their local z; turn them (-90 deg about x) so z points along +y:
        # a positive joint speed about local z then rolls the device forward (+x).
        axle = c.getQuaternionFromEuler([-math.pi / 2, 0.0, 0.0])
        x0, y0, th0 = (float(v) for v in start_pose)
        robot = c.createMultiBody(
            baseMass=base_kg,
            baseCollisionShapeIndex=base_collision,
            baseVisualShapeIndex=base_visual,
            basePosition=[x0, y0, r],
            baseOrientation=c.getQuaternionFromEuler([0.0, 0.0, th0]),
            baseInertialFramePosition=[com_x, 0.0, com_z],
            linkMasses=[P.wheel_mass_kg, P.wheel_mass_kg],
            linkCollisionShapeIndices=[wheel_collision, wheel_collision],
            linkVisualShapeIndices=[wheel_visual, wheel_visual],
            linkPositions=[[0.0, half_track, 0.0], [0.0, -half_track, 0.0]],  # left, right
            linkOrientations=[axle, axle],
            linkInertialFramePositions=[[0, 0, 0], [0, 0, 0]],
            linkInertialFrameOrientations=[[0, 0, 0, 1], [0, 0, 0, 1]],
            linkParentIndices=[0, 0],
            linkJointTypes=[pb.JOINT_REVOLUTE, pb.JOINT_REVOLUTE],
            linkJointAxis=[[0, 0, 1], [0, 0, 1]],
        )
        # Inertia of the base: a uniform box around device and rider (assumed dimensions).
        lx, ly, lz = 0.6, 0.55, max(0.4, 2.0 * cfg.com_height_m)
        inertia = [
            base_kg / 12 * (ly**2 + lz**2),
            base_kg / 12 * (lx**2 + lz**2),
            base_kg / 12 * (lx**2 + ly**2),
        ]
        self._com_offset = np.array([com_x, 0.0, com_z])  # CoM in the axle frame
        # Pitfall: a changeDynamics call that mixes damping with friction silently drops the
        # friction, so damping gets a call of its own.
        c.changeDynamics(
            robot,
            -1,
            localInertiaDiagonal=inertia,
            lateralFriction=0.0,
            rollingFriction=0.0,
            spinningFriction=0.0,
        )
        c.changeDynamics(robot, -1, linearDamping=0.0, angularDamping=0.0)
        for link in (0, 1):
            c.changeDynamics(
                robot, link, lateralFriction=wheel_friction, rollingFriction=0.0, spinningFriction=0.0
            )
        if c.getDynamicsInfo(robot, 0)[1] != wheel_friction or c.getDynamicsInfo(robot, -1)[1] != 0.0:
            raise RuntimeError(
                "pybullet did not apply the wheel and caster friction; "
                "check the pybullet version (3.2.6+ expected)."
            )
        # Settle onto the casters and wheels with the motors holding still.
        c.setJointMotorControlArray(
            robot, [0, 1], pb.VELOCITY_CONTROL, targetVelocities=[0, 0], forces=[self.motor_torque_nm] * 2
        )
        for _ in range(int(round(0.25 / self.time_step))):
            c.stepSimulation()
        return robot

    def add_pedestrian(
        self,
        xy: Sequence[float],
        radius_m: float = 0.25,
        height_m: float = 1.7,
        contact_stiffness_npm: float | None = 5000.0,
        contact_damping_nspm: float = 500.0,
    ) -> int:
        """Add a kinematic pedestrian (a cylinder) standing at ``xy``; returns its body id.

        A person is not a wall: their contacts are compliant, ``contact_stiffness_npm``
        (5 kN/m, *assumed*: 45 N at 9 mm) with ``contact_damping_nspm``. Rigid kinematic bodies
        walking into the device shove it hard enough to knock it over; pass ``None`` for a
        rigid contact.
        """
        if radius_m <= 0 or height_m <= 0:
            raise ValueError("radius_m and height_m of a pedestrian must be > 0.")
        c = self.client
        shape = c.createCollisionShape(pb.GEOM_CYLINDER, radius=radius_m, height=height_m)
        visual = c.createVisualShape(
            pb.GEOM_CYLINDER, radius=radius_m, length=height_m, rgbaColor=_PEDESTRIAN_RGBA
        )
        body = c.createMultiBody(0, shape, visual, basePosition=[xy[0], xy[1], 0.5 * height_m])
        if contact_stiffness_npm is not None:
            c.changeDynamics(
                body, -1, contactStiffness=contact_stiffness_npm, contactDamping=contact_damping_nspm
            )
        self.pedestrians.append(body)
        self._heights[body] = 0.5 * height_m
        self._ped_radius = max(self._ped_radius, float(radius_m))
        self._ped_xy = np.vstack([self._ped_xy, [float(xy[0]), float(xy[1])]])
        self._watch(body, "pedestrian")
        return body

    def move_pedestrians(self, positions_xy, bodies: Sequence[int] | None = None) -> None:
        """Place pedestrians (all, or ``bodies``) at ``positions_xy``, shape ``(n, 2)``."""
        bodies = self.pedestrians if bodies is None else list(bodies)
        xy = np.asarray(positions_xy, dtype=float)
        if xy.shape != (len(bodies), 2):
            raise ValueError(f"positions_xy must have shape ({len(bodies)}, 2); got {xy.shape}.")
        reset, identity, heights = self._reset_pose, (0.0, 0.0, 0.0, 1.0), self._heights
        for body, (x, y) in zip(bodies, xy.tolist(), strict=True):
            reset(body, (x, y, heights[body]), identity)
        if bodies is self.pedestrians:
            self._ped_xy = xy.copy()
        else:
            index = {b: i for i, b in enumerate(self.pedestrians)}
            self._ped_xy[[index[b] for b in bodies]] = xy

    def add_wall(
        self,
        start_xy: Sequence[float],
        end_xy: Sequence[float],
        thickness_m: float = 0.1,
        height_m: float = 1.0,
    ) -> int:
        """Add a straight wall (a static box) from ``start_xy`` to ``end_xy``; returns its id."""
        (x0, y0), (x1, y1) = start_xy, end_xy
        length = math.hypot(x1 - x0, y1 - y0)
        if length <= 0 or thickness_m <= 0 or height_m <= 0:
            raise ValueError("A wall needs two different end points and positive thickness and height.")
        body = self._static_box(
            [length / 2, thickness_m / 2, height_m / 2],
            [(x0 + x1) / 2, (y0 + y1) / 2, height_m / 2],
            [0.0, 0.0, math.atan2(y1 - y0, x1 - x0)],
            _WALL_RGBA,
        )
        self.walls.append(body)
        self._watch(body, "wall")
        return body

    def add_ramp(
        self,
        start_xy: Sequence[float],
        heading_rad: float,
        length_m: float,
        slope_percent: float,
        width_m: float = 1.5,
        landing_m: float = 1.5,
    ) -> tuple[int, int]:
        """Add a ramp rising along ``heading_rad`` from ground level at ``start_xy``.

        Parameters
        ----------
        slope_percent : float
            Rise over run in percent (8.33 = 1:12, the Japanese building limit).
        length_m : float
            Horizontal run of the inclined part.
        landing_m : float
            Length of the level landing at the top (0 for none).

        Returns
        -------
        (ramp, landing) : body ids (landing is -1 if ``landing_m`` is 0)
        """
        if length_m <= 0 or width_m <= 0 or not (0 < slope_percent < 100):
            raise ValueError("A ramp needs length_m > 0, width_m > 0 and 0 < slope_percent < 100.")
        alpha = math.atan(slope_percent / 100.0)
        thickness = 0.1
        slant = length_m / math.cos(alpha)
        rise = length_m * math.tan(alpha)
        ux, uy = math.cos(heading_rad), math.sin(heading_rad)
        # Centre of the slab: halfway up the slope, half a thickness below the surface.
        cx = start_xy[0] + ux * (length_m / 2 + math.sin(alpha) * thickness / 2)
        cy = start_xy[1] + uy * (length_m / 2 + math.sin(alpha) * thickness / 2)
        cz = rise / 2 - math.cos(alpha) * thickness / 2
        ramp = self._static_box(
            [slant / 2, width_m / 2, thickness / 2], [cx, cy, cz], [0.0, -alpha, heading_rad], _RAMP_RGBA
        )
        self.terrain.append(ramp)
        landing = -1
        if landing_m > 0:
            lx = start_xy[0] + ux * (length_m + landing_m / 2)
            ly = start_xy[1] + uy * (length_m + landing_m / 2)
            landing = self._static_box(
                [landing_m / 2, width_m / 2, rise / 2],
                [lx, ly, rise / 2],
                [0.0, 0.0, heading_rad],
                _RAMP_RGBA,
            )
            self.terrain.append(landing)
        return ramp, landing

    def add_curb(
        self,
        centre_xy: Sequence[float],
        heading_rad: float,
        height_m: float,
        length_m: float = 2.0,
        depth_m: float = 1.0,
    ) -> int:
        """Add a curb step: a static box ``height_m`` high, its long side across ``heading_rad``.

        ``depth_m`` is how far the raised part extends along ``heading_rad``; ``length_m`` its
        extent across. Approach it along ``heading_rad`` to climb it.
        """
        if height_m <= 0 or length_m <= 0 or depth_m <= 0:
            raise ValueError("A curb needs positive height_m, length_m and depth_m.")
        body = self._static_box(
            [depth_m / 2, length_m / 2, height_m / 2],
            [centre_xy[0], centre_xy[1], height_m / 2],
            [0.0, 0.0, heading_rad],
            _CURB_RGBA,
        )
        self.terrain.append(body)
        return body

    def _static_box(self, half_extents, position, euler, rgba) -> int:
        c = self.client
        shape = c.createCollisionShape(pb.GEOM_BOX, halfExtents=half_extents)
        visual = c.createVisualShape(pb.GEOM_BOX, halfExtents=half_extents, rgbaColor=rgba)
        body = c.createMultiBody(
            0, shape, visual, basePosition=position, baseOrientation=c.getQuaternionFromEuler(euler)
        )
        c.changeDynamics(body, -1, lateralFriction=1.0)
        return body

    def _watch(self, body: int, kind: str) -> None:
        self._watched[body] = kind
        self.contact_onsets[body] = 0

    # --- driving -------------------------------------------------------------------------------

    def step(self, speed_mps: float, yaw_rate_radps: float, n_steps: int = 1) -> None:
        """Command a body twist and advance the physics by ``n_steps`` steps.

        The twist is saturated at the wheel limit (both wheels scaled, keeping the curvature,
        see :func:`~sscity.mobility.kinematics.saturate_twist`) and sent to the wheel motors
        as target speeds; the motors reach them within their torque limit. Acceleration
        limits are the controller's job (:class:`~sscity.mobility.control.RateLimiter`).
        """
        v, w = saturate_twist(float(speed_mps), float(yaw_rate_radps), self.params)
        half, r = 0.5 * self.params.track_width_m, self.params.wheel_radius_m
        targets = ((v - w * half) / r, (v + w * half) / r)
        if targets != self._last_wheel_targets:
            self._motors(
                self.robot,
                self._wheel_joints,
                pb.VELOCITY_CONTROL,
                targetVelocities=targets,
                forces=(self.motor_torque_nm, self.motor_torque_nm),
            )
            self._last_wheel_targets = targets
        poll = self._needs_contact_polling(n_steps)
        for _ in range(int(n_steps)):
            self._step_simulation()
            self.steps += 1
            self.time_s = self.steps * self.time_step
            if poll:
                self._update_contacts()
        if not poll and self._engaged:
            # Nothing was near enough to touch: release pairs that have been apart long enough.
            self._touching = set()
            self._engaged = {
                b for b in self._engaged if self.time_s - self._last_contact[b] < self.contact_release_s
            }

    def _needs_contact_polling(self, n_steps: int) -> bool:
        """Broad phase: poll contacts only if a watched body could touch within ``n_steps``.

        Walls are always polled. Pedestrians are skipped while every centre is further from
        the capsule footprint (which encloses the device's shapes) than their radius plus the
        distance the device and the pedestrians can move in ``n_steps`` (plus 0.2 m).
        """
        if self.walls:
            return True
        if len(self._ped_xy) == 0:
            return False
        travel = 2.0 * self.params.max_speed_mps * n_steps * self.time_step
        margin = self._ped_radius + travel + 0.2
        return bool(capsule_distance(self.pose(), self._ped_xy, self.params).min() < margin)

    def _update_contacts(self) -> None:
        watched = self._watched
        now = {point[2] for point in self._contacts(bodyA=self.robot) if point[2] in watched}
        t, last = self.time_s, self._last_contact
        for body in now:
            if body not in self._engaged:
                self.contact_onsets[body] += 1
                self.contact_events.append(ContactEvent(t, body, watched[body]))
            last[body] = t
        if self._engaged or now:
            release = self.contact_release_s
            self._engaged = now | {b for b in self._engaged if t - last[b] < release}
        self._touching = now

    # --- reading the state ------------------------------------------------------------------------

    def _axle(self) -> tuple[np.ndarray, np.ndarray]:
        """Axle-centre position and the base's rotation matrix.

        pybullet reports the base's *centre of mass*; the axle centre is the CoM minus the
        rotated inertial offset.
        """
        com, quaternion = self._base_pose(self.robot)
        rotation = np.array(self.client.getMatrixFromQuaternion(quaternion)).reshape(3, 3)
        return np.asarray(com) - rotation @ self._com_offset, rotation

    def pose(self) -> np.ndarray:
        """``(x_m, y_m, theta_rad)`` of the axle centre on the ground plane; theta in [-pi, pi]."""
        axle, rotation = self._axle()
        return np.array([axle[0], axle[1], math.atan2(rotation[1, 0], rotation[0, 0])])

    def pose3d(self) -> tuple[np.ndarray, np.ndarray]:
        """Axle-centre position ``(x, y, z)`` in m and orientation ``(roll, pitch, yaw)`` in rad."""
        axle, _ = self._axle()
        _, quaternion = self._base_pose(self.robot)
        return axle, np.array(self.client.getEulerFromQuaternion(quaternion))

    def state(self) -> tuple[np.ndarray, tuple[float, float], float]:
        """``(pose, (speed_mps, yaw_rate_radps), tilt_rad)`` read in one go (the control loop's call)."""
        com, quaternion = self._base_pose(self.robot)
        (vx, vy, vz), (wx, wy, wz) = self._base_velocity(self.robot)
        rotation = np.array(self.client.getMatrixFromQuaternion(quaternion)).reshape(3, 3)
        offset = rotation @ self._com_offset
        axle = np.asarray(com) - offset
        ox, oy, oz = -offset
        ax_ = vx + wy * oz - wz * oy
        ay_ = vy + wz * ox - wx * oz
        pose = np.array([axle[0], axle[1], math.atan2(rotation[1, 0], rotation[0, 0])])
        twist = (float(ax_ * rotation[0, 0] + ay_ * rotation[1, 0]), float(wz))
        return pose, twist, float(math.acos(max(-1.0, min(1.0, rotation[2, 2]))))

    def tilt_rad(self) -> float:
        """Angle (rad) between the device's up axis and the vertical: 0 upright, pi upside down."""
        _, rotation = self._axle()
        return float(math.acos(max(-1.0, min(1.0, rotation[2, 2]))))

    def twist(self) -> tuple[float, float]:
        """Measured ``(speed_mps, yaw_rate_radps)`` of the axle centre: speed along the heading."""
        (vx, vy, vz), (wx, wy, wz) = self._base_velocity(self.robot)
        com = np.asarray(self._base_pose(self.robot)[0])
        axle, rotation = self._axle()
        ox, oy, oz = axle - com
        # v_axle = v_com + omega x (axle - com), projected on the heading (body x axis).
        ax_ = vx + wy * oz - wz * oy
        ay_ = vy + wz * ox - wx * oz
        return float(ax_ * rotation[0, 0] + ay_ * rotation[1, 0]), float(wz)

    def measured_pose(self, std_m: float = 0.02, std_rad: float = 0.01) -> np.ndarray:
        """The pose with Gaussian measurement noise drawn from :attr:`rng` (odometry model)."""
        return self.pose() + self.rng.normal(0.0, [std_m, std_m, std_rad])

    def touching(self) -> set[int]:
        """Watched bodies (pedestrians, walls) in contact with the device after the last step."""
        return set(self._touching)

    @property
    def total_contact_onsets(self) -> int:
        """Contact onsets with pedestrians and walls since the world was built."""
        return sum(self.contact_onsets.values())

    def contact_force(self, body: int) -> float:
        """Sum of the normal forces (N) between the device and ``body`` in the last step."""
        return float(sum(point[9] for point in self._contacts(bodyA=self.robot, bodyB=body)))

    def clearance(self, body: int, max_distance_m: float = 5.0) -> float:
        """Smallest distance (m) between the device's collision shapes and ``body``.

        Uses ``getClosestPoints``; negative while they interpenetrate, ``inf`` beyond
        ``max_distance_m``. This measures the *physical* shapes; the CrowdBot metrics use the
        capsule footprint instead (:func:`~sscity.mobility.metrics.capsule_distance`).
        """
        points = self.client.getClosestPoints(self.robot, body, max_distance_m)
        return min((point[8] for point in points), default=math.inf)

    # --- life cycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect from the physics server (safe to call twice)."""
        client = getattr(self, "client", None)
        if client is not None and client._client >= 0:
            client.disconnect()

    def __enter__(self) -> QoloSim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"QoloSim(seed={self.seed}, config={self.config.name!r}, time_s={self.time_s:.3f}, "
            f"pedestrians={len(self.pedestrians)}, walls={len(self.walls)})"
        )


def main() -> None:
    """Drive the tracking checks and print simulated vs ideal poses, with and without a rate limiter."""
    from .control import RateLimiter
    from .kinematics import integrate_unicycle, rollout

    with QoloSim(seed=0) as sim:
        for _ in range(5 * 240):
            sim.step(1.0, 0.0)
        print("straight 5 s at 1 m/s, step command :", np.round(sim.pose(), 4), " ideal [5, 0, 0]")
    with QoloSim(seed=0) as sim:
        for _ in range(10 * 240):
            sim.step(1.0, 0.3)
        print(
            "turn v=1, w=0.3, 10 s, step command :",
            np.round(sim.pose(), 4),
            " ideal",
            np.round(integrate_unicycle([0, 0, 0], 1.0, 0.3, 10.0), 4),
        )
    limiter, sent = RateLimiter(1 / 240), []
    with QoloSim(seed=0) as sim:
        for _ in range(10 * 240):
            sent.append(limiter(1.0, 0.3))
            sim.step(*sent[-1])
        sent_array = np.array(sent)
        print(
            "turn v=1, w=0.3, 10 s, rate-limited :",
            np.round(sim.pose(), 4),
            " ideal rollout of the commands sent",
            np.round(rollout([0, 0, 0], sent_array[:, 0], sent_array[:, 1], 1 / 240)[-1], 4),
        )


if __name__ == "__main__":
    main()
