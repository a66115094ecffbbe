"""Generator of ``ride-imu``: IMU streams of the SIMULATED Qolo riding over five surfaces.

Every number in this dataset comes from the physics simulation :class:`sscity.mobility.world.QoloSim`
(pybullet, headless ``DIRECT`` mode, fixed 1/240 s step) plus seeded sensor noise. **Nothing
was measured on a real device.** It is the data of module 03's "classify the surface on the
device" task: module 04's device is the sensing device here.

What is real and what is not:

- **from published sources**: the device (Qolo's wheel radius, track, mass and centre of mass,
  see :mod:`sscity.mobility.params`); the tactile paving bars of JIS T 9251 (height 5 mm,
  top width 17 mm, base 27 mm, top length 270 mm, 75 mm centre to centre, four bars on a
  300 mm block) [1]_; the 1:12 ramp (8.33 %), the steepest ramp the Japanese barrier-free
  building rules and the ADA 2010 Standards allow, and its rise of at most 0.75 m per run [2]_;
  the 2 cm curb lip that Japanese crossings keep for cane users, sidewalks 5 cm (semi-flat)
  above the road and slopes of 5 % (8 % where unavoidable) [3]_.
- **assumed**: the gravel (seeded spheres sticking 2-8 mm out of the ground), the 15 cm
  height of an older mount-up sidewalk (half the curb cuts climb to it), the tyre
  compliance (a contact stiffness of 120-200 kN/m and damping of 0.8-1.5 kN s/m drawn per run:
  rigid contacts ring at several g), where the IMU sits (on the chassis, 0.21 m behind the
  axle at axle height), and the sensor's noise, bias and range, chosen to look like a
  calibrated consumer MEMS IMU such as the InvenSense MPU-6050 [4]_ (accelerometer noise
  400 µg/√Hz -> about 0.03 m/s² rms at this rate; gyroscope 0.05 °/s rms ≈ 0.0009 rad/s; range
  ±16 g and ±2000 °/s). The datasheet's *uncalibrated* offsets (±50-80 mg, ±20 °/s) are much
  larger: we assume the device calibrated its IMU at rest and keep a small residual bias per run.

How a run is made (:func:`simulate_run`): a fresh world; the surface starts 2 m ahead of the
device; the device accelerates (at most 1.5 m/s², :class:`~sscity.mobility.control.RateLimiter`)
to the commanded speed and holds it, steering back onto its lane with a proportional yaw-rate
command; recording starts once the axle is 0.55 m onto the surface (the rear caster is on it
too) and lasts 8 s. At every physics step the velocity of the IMU's point is read
(``v_CoM + omega x r``); its finite difference plus gravity, rotated into the body frame, is the
*specific force* an accelerometer measures (at rest on level ground ``az`` ≈ +9.81 m/s²); the
gyroscope measures the body-frame angular rate. Each 100 Hz sample is the mean of the 240 Hz
signal over the preceding 10 ms (a box anti-aliasing filter, as an IMU's digital low-pass
does), then noise and bias are added, the values are clipped to the range and rounded to
0.001 m/s² and 0.0001 rad/s (finer than the noise).

Axes (body frame, as ROS REP 103): ``x`` forward, ``y`` left, ``z`` up; rates are positive
counter-clockwise about each axis (nose-down pitch is ``+gy``).

Surfaces:

``smooth``
    Level, even floor.
``tactile_paving``
    A field of JIS T 9251 linear bars (blocks of four bars, 30 mm joints), turned by a seeded
    angle of up to ±15 degrees from square to the path, so that the two wheels do not hit a
    bar at the same instant. In a street the device crosses strips 30-60 cm wide; the field
    makes every window of the run a tactile-paving window.
``gravel``
    Seeded spheres of radius 6-15 mm sticking 2-8 mm out of the ground, about 500 per m²
    over a strip 1.2 m wide (a bumpy path, not loose gravel: the stones do not move).
``curb_cut``
    Repeated lowered-curb crossings (as at driveways, 歩道の切り下げ): road level, a 2 cm lip
    up, a curb-cut ramp of 5-8 % up to the sidewalk (5 or 15 cm above the road), a stretch of
    sidewalk, the ramp down and the 2 cm drop back to the road; lengths are seeded.
``ramp``
    A 1:12 (8.33 %) ramp, ridden uphill; 8.7 m long so that it rises 0.725 m, within the
    0.75 m allowed between landings.

Speeds 0.5, 0.75 and 1.0 m/s (commanded; Qolo's limit is 1.5 m/s; on the bars the device
covers ground 12-20 % slower, its wheels slipping as they climb each bar). 1.0 m/s is the fastest a
whole 8-s run still fits on one flight of a 1:12 ramp.

References
----------
.. [1] JIS T 9251:2014, 高齢者・障害者配慮設計指針—視覚障害者誘導用ブロック等の突起の形状・寸法
   及びその配列 (Guidelines for older persons and persons with disabilities -- Dimensions and
   patterns of raised parts of tactile ground surface indicators); the figures are explained
   in National Rehabilitation Center for Persons with Disabilities, *Rehabilitation Manual 13:
   Tactile ground surface indicators for blind persons*, 2003, section 1-2. The international
   counterpart is ISO 23599:2019.
.. [2] 高齢者、障害者等の円滑な移動等に配慮した建築設計標準 (MLIT, Japan): ramps ≤ 1/12, a
   landing every 75 cm of rise; 2010 ADA Standards for Accessible Design, 405.2 (slope ≤ 1:12)
   and 405.6 (rise ≤ 30 in = 760 mm per run).
.. [3] 道路の移動等円滑化に関するガイドライン (MLIT, Japan): sidewalk height 5 cm as the
   standard (semi-flat), a 2 cm step at crossings, slopes ≤ 5 % (8 % where unavoidable).
.. [4] InvenSense (TDK), MPU-6000/MPU-6050 Product Specification, PS-MPU-6000A-00 rev. 3.4
   (2013), tables 6.1 and 6.2.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "RIDE_IMU_FILES",
    "RIDE_IMU_SEED",
    "SAMPLE_RATE_HZ",
    "SPEEDS_MPS",
    "SURFACES",
    "load_ride_imu",
    "load_ride_runs",
    "make_ride_imu",
    "ride_plan",
    "simulate_run",
    "write_ride_imu",
]

RIDE_IMU_SEED = 20250611
RIDE_IMU_FILES = ("runs.csv", "imu.csv")
SURFACES = ("smooth", "tactile_paving", "gravel", "curb_cut", "ramp")
SPEEDS_MPS = (0.5, 0.75, 1.0)
REPEATS = 4
SAMPLE_RATE_HZ = 100
RUN_SECONDS = 8.0
COLUMNS = ("run_id", "surface", "speed_mps", "t_s", "ax_mps2", "ay_mps2", "az_mps2",
           "gx_radps", "gy_radps", "gz_radps")
ACCEL_COLUMNS = ("ax_mps2", "ay_mps2", "az_mps2")
GYRO_COLUMNS = ("gx_radps", "gy_radps", "gz_radps")

# Geometry of the course (m).
SURFACE_START_M = 2.0  # lead-in on level floor before the surface
RECORD_AFTER_M = 0.55  # the rear caster (0.45 m behind the axle) is on the surface too
RAMP_SLOPE = 1.0 / 12.0
RAMP_LENGTH_M = 8.7  # rise 0.725 m <= 0.75 m between landings
IMU_ON_CHASSIS_M = (-0.21, 0.0, 0.0)  # from the axle centre, body frame (chassis centre)

# JIS T 9251 linear bars (m).
BAR_HEIGHT = 0.005
BAR_TOP_WIDTH, BAR_BASE_WIDTH = 0.017, 0.027
BAR_TOP_LENGTH = 0.270
BAR_PITCH = 0.075
BLOCK = 0.300

# Sensor model (assumed; see the module docstring).
ACCEL_NOISE_MPS2 = 0.03
GYRO_NOISE_RADPS = 0.0009
ACCEL_BIAS_MPS2 = 0.02
GYRO_BIAS_RADPS = 0.002
ACCEL_RANGE_MPS2 = 16 * 9.80665
GYRO_RANGE_RADPS = math.radians(2000)

_STEER_GAIN_Y, _STEER_GAIN_HEADING, _STEER_LIMIT = 2.0, 3.0, 0.5


def _streams(run_seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one run's seed: the plan's draws and the ride's draws."""
    plan, ride = np.random.SeedSequence(run_seed).spawn(2)
    return np.random.default_rng(plan), np.random.default_rng(ride)


# ------------------------------------------------------------------------------ the plan


def ride_plan(seed: int = RIDE_IMU_SEED) -> pd.DataFrame:
    """One row per run: what is simulated, with every random choice drawn from the run's seed.

    Runs are numbered 1, 2, ... over surface x speed x repeat (``REPEATS`` = 4 each, 60 runs).
    The rider sits in the 1st and 3rd repeat and stands in the 2nd and 4th, so posture is
    balanced within every surface and speed. Each run's seed is ``seed + run_id``. It is
    split (``numpy.random.SeedSequence.spawn``) into two independent streams: one draws the
    tyre's contact stiffness and damping here, the other the surface layout and the sensor
    noise in :func:`simulate_run`; so one run can be rebuilt alone.

    Returns
    -------
    pandas.DataFrame
        ``run_id, surface, speed_mps, seed, posture, tyre_stiffness_npm, tyre_damping_nspm,
        slope_percent`` (the ramp's slope; 0 elsewhere).
    """
    rows = []
    run_id = 0
    for surface in SURFACES:
        for speed in SPEEDS_MPS:
            for repeat in range(REPEATS):
                run_id += 1
                rng, _ = _streams(seed + run_id)
                rows.append({
                    "run_id": run_id, "surface": surface, "speed_mps": speed, "seed": seed + run_id,
                    "posture": ("seated", "standing")[repeat % 2],
                    "tyre_stiffness_npm": int(round(rng.uniform(120_000, 200_000), -3)),
                    "tyre_damping_nspm": int(round(rng.uniform(800, 1500), -1)),
                    "slope_percent": round(100 * RAMP_SLOPE, 2) if surface == "ramp" else 0.0,
                })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ surfaces


def _soften(client, body: int, plan_row) -> None:
    client.changeDynamics(body, -1, lateralFriction=1.0, contactStiffness=float(plan_row.tyre_stiffness_npm),
                          contactDamping=float(plan_row.tyre_damping_nspm))


def _bars_mesh(x0: float, length: float, angle: float, shift: float, half_width: float = 0.75):
    """Vertices and triangle indices of a field of JIS T 9251 bars turned by ``angle`` about (x0, 0)."""
    half_top, half_base = BAR_TOP_WIDTH / 2, BAR_BASE_WIDTH / 2
    flare = (BAR_BASE_WIDTH - BAR_TOP_WIDTH) / 2  # 45-degree sides: 5 mm out over 5 mm up
    # Local (u across the bar, v along it) corners: base slightly below ground, top at 5 mm.
    faces = ((4, 5, 6), (4, 6, 7), (0, 1, 5), (0, 5, 4), (1, 2, 6), (1, 6, 5), (2, 3, 7), (2, 7, 6),
             (3, 0, 4), (3, 4, 7))
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    reach = half_width / max(cos_a, 0.5) + BLOCK  # the turned field still covers the lane
    vertices, indices = [], []
    rows = int((length + 2 * reach * abs(sin_a)) / BAR_PITCH) + 1
    blocks = np.arange(-math.ceil(reach / BLOCK), math.ceil(reach / BLOCK) + 1)
    for row in range(rows):
        u = row * BAR_PITCH - reach * abs(sin_a)
        for block in blocks:
            v0 = block * BLOCK + shift + (BLOCK - BAR_TOP_LENGTH) / 2
            v1 = v0 + BAR_TOP_LENGTH
            corners = ((u - half_base, v0 - flare, -0.001), (u + half_base, v0 - flare, -0.001),
                       (u + half_base, v1 + flare, -0.001), (u - half_base, v1 + flare, -0.001),
                       (u - half_top, v0, BAR_HEIGHT), (u + half_top, v0, BAR_HEIGHT),
                       (u + half_top, v1, BAR_HEIGHT), (u - half_top, v1, BAR_HEIGHT))
            base = len(vertices)
            for cu, cv, z in corners:
                vertices.append([x0 + cu * cos_a - cv * sin_a, cu * sin_a + cv * cos_a, z])
            for face in faces:
                indices.extend(base + k for k in face)
    return vertices, indices


def _add_tactile_paving(sim, rng, plan_row, length: float) -> dict:
    import pybullet as pb

    angle = float(rng.uniform(-15, 15))
    shift = float(rng.uniform(0, BLOCK))
    vertices, indices = _bars_mesh(SURFACE_START_M, length, math.radians(angle), shift)
    shape = sim.client.createCollisionShape(pb.GEOM_MESH, vertices=vertices, indices=indices)
    body = sim.client.createMultiBody(0, shape, -1)
    _soften(sim.client, body, plan_row)
    sim.terrain.append(body)
    return {"bar_angle_deg": round(angle, 2)}


def _add_gravel(sim, rng, plan_row, length: float) -> dict:
    import pybullet as pb

    half_width, density = 0.6, 500.0
    count = int(density * 2 * half_width * length)
    x = np.sort(rng.uniform(SURFACE_START_M, SURFACE_START_M + length, count))
    y = rng.uniform(-half_width, half_width, count)
    radius = rng.uniform(0.006, 0.015, count)
    height = rng.uniform(0.002, 0.008, count)
    for start in range(0, count, 100):  # compounds of 100: thousands of bodies slow every step
        part = slice(start, min(start + 100, count))
        n = len(x[part])
        shape = sim.client.createCollisionShapeArray(
            shapeTypes=[pb.GEOM_SPHERE] * n, radii=radius[part].tolist(),
            collisionFramePositions=np.column_stack([x[part], y[part], height[part] - radius[part]]).tolist())
        body = sim.client.createMultiBody(0, shape, -1)
        _soften(sim.client, body, plan_row)
        sim.terrain.append(body)
    return {"stones": count}


def _curb_cut_profile(rng, length: float) -> list[tuple[float, float]]:
    """Top-surface profile ``[(x, z), ...]`` of repeated lowered-curb crossings (vertical steps allowed)."""
    lip = 0.02
    points = [(0.0, 0.0)]
    x = float(rng.uniform(0.0, 1.0))  # where the first lip is, so runs start at different phases
    while x < length:
        sidewalk = (0.05, 0.15)[int(rng.integers(2))]
        slope = float(rng.uniform(0.05, 0.08))
        ramp = (sidewalk - lip) / slope
        top = float(rng.uniform(0.6, 1.5))
        road = float(rng.uniform(0.6, 1.2))
        points += [(x, 0.0), (x, lip), (x + ramp, sidewalk), (x + ramp + top, sidewalk),
                   (x + 2 * ramp + top, lip), (x + 2 * ramp + top, 0.0)]
        x += 2 * ramp + top + road
    return points


def _add_curb_cut(sim, rng, plan_row, length: float) -> dict:
    import pybullet as pb

    half_width, thickness = 0.75, 0.1
    points = [(SURFACE_START_M + px, z) for px, z in _curb_cut_profile(rng, length)]
    half_extents, positions, orientations = [], [], []
    client = sim.client
    for (xa, za), (xb, zb) in zip(points[:-1], points[1:], strict=True):
        if xb <= xa or (za == 0.0 and zb == 0.0):
            continue  # a vertical step (made by the boxes' faces) or level road (the floor)
        low = min(za, zb)
        if low > 0:  # a block under the segment: its ends are the steps' vertical faces
            half_extents.append([(xb - xa) / 2, half_width, low / 2])
            positions.append([(xa + xb) / 2, 0.0, low / 2])
            orientations.append([0.0, 0.0, 0.0, 1.0])
        if zb != za:  # the sloped part: a tilted slab whose top runs from (xa, za) to (xb, zb)
            alpha = math.atan2(zb - za, xb - xa)
            slant = math.hypot(xb - xa, zb - za)
            half_extents.append([slant / 2, half_width, thickness / 2])
            positions.append([(xa + xb) / 2 + math.sin(alpha) * thickness / 2, 0.0,
                              (za + zb) / 2 - math.cos(alpha) * thickness / 2])
            orientations.append(list(client.getQuaternionFromEuler([0.0, -alpha, 0.0])))
    for start in range(0, len(positions), 50):
        part = slice(start, start + 50)
        n = len(positions[part])
        shape = client.createCollisionShapeArray(
            shapeTypes=[pb.GEOM_BOX] * n, halfExtents=half_extents[part],
            collisionFramePositions=positions[part], collisionFrameOrientations=orientations[part])
        body = client.createMultiBody(0, shape, -1)
        _soften(client, body, plan_row)
        sim.terrain.append(body)
    return {"lips": sum(1 for a, b in zip(points[:-1], points[1:], strict=True) if a[0] == b[0]) // 2}


def _add_ramp(sim, rng, plan_row, length: float) -> dict:
    ramp, _ = sim.add_ramp((SURFACE_START_M, 0.0), 0.0, RAMP_LENGTH_M, 100 * RAMP_SLOPE,
                           width_m=1.5, landing_m=0.0)
    _soften(sim.client, ramp, plan_row)
    return {}


_BUILDERS = {
    "smooth": lambda sim, rng, plan_row, length: {},
    "tactile_paving": _add_tactile_paving,
    "gravel": _add_gravel,
    "curb_cut": _add_curb_cut,
    "ramp": _add_ramp,
}


# ------------------------------------------------------------------------------ one run


@contextlib.contextmanager
def _quiet_stdout():
    """Silence the ``argv[0]=`` line pybullet's C code prints on every connection (60 runs)."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no real file descriptor 1: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _rotations(quaternions: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3), body to world, from pybullet quaternions (x, y, z, w)."""
    x, y, z, w = quaternions.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=1)


def _box_average(signal: np.ndarray, dt: float, t_start: float, n_samples: int, period: float) -> np.ndarray:
    """Mean of a piecewise-constant signal (value k holds on ((k-1) dt, k dt]) over each output period.

    Output sample ``j`` is the mean over ``(t_start + j period, t_start + (j + 1) period]``.
    """
    cumulative = np.vstack([np.zeros((1, signal.shape[1])), np.cumsum(signal * dt, axis=0)])
    grid = np.arange(len(cumulative)) * dt
    edges = t_start + np.arange(n_samples + 1) * period
    integral = np.column_stack([np.interp(edges, grid, cumulative[:, k]) for k in range(signal.shape[1])])
    return np.diff(integral, axis=0) / period


def simulate_run(plan_row, *, return_truth: bool = False):
    """Simulate one run of :func:`ride_plan` and return its IMU samples.

    Parameters
    ----------
    plan_row : row of :func:`ride_plan` (a namedtuple from ``itertuples()`` or a Series)
    return_truth : bool, default False
        Also return a dict with the run's layout (e.g. the bar angle) and noise-free signals.

    Returns
    -------
    pandas.DataFrame
        ``COLUMNS``: 800 samples at 100 Hz (8 s), ``t_s`` from 0.00.
    """
    from sscity.mobility.control import RateLimiter
    from sscity.mobility.params import GRAVITY_MPS2
    from sscity.mobility.world import QoloSim

    if plan_row.surface not in _BUILDERS:
        raise ValueError(f"Unknown surface {plan_row.surface!r}; choose one of {SURFACES}. / "
                         f"不明な路面 {plan_row.surface!r} です。{SURFACES} から選んでください。")
    _, rng = _streams(int(plan_row.seed))
    speed = float(plan_row.speed_mps)
    n_samples = int(RUN_SECONDS * SAMPLE_RATE_HZ)
    period = 1.0 / SAMPLE_RATE_HZ
    surface_length = RECORD_AFTER_M + speed * RUN_SECONDS + 1.5
    with _quiet_stdout():
        world = QoloSim(seed=int(plan_row.seed), config=plan_row.posture)
    with world as sim:
        client, robot, dt = sim.client, sim.robot, sim.time_step
        _soften(client, sim.floor, plan_row)
        truth = _BUILDERS[plan_row.surface](sim, rng, plan_row, surface_length)
        # Where the IMU sits relative to the base's centre of mass, in the body frame (constant),
        # and where the axle is relative to it (for the recording trigger).
        axle, _ = sim.pose3d()
        com, quaternion = client.getBasePositionAndOrientation(robot)
        rotation0 = _rotations(np.asarray([quaternion]))[0]
        axle_from_com = [round(float(v), 9) for v in rotation0.T @ (np.asarray(axle) - np.asarray(com))]
        imu_from_com = np.asarray(IMU_ON_CHASSIS_M) + axle_from_com

        limiter = RateLimiter(dt)
        log, record_step = [], None
        trigger_x = SURFACE_START_M + RECORD_AFTER_M
        max_steps = int((trigger_x / speed + 2 + RUN_SECONDS) / dt)
        for step in range(max_steps):
            # Steering and the trigger use plain Python floats on pybullet's own numbers, no
            # numpy linear algebra: BLAS kernels differ between CPUs in the last bit, and a
            # last-bit change in a command grows into a different ride.
            (_, y, _), (qx, qy, qz, qw) = client.getBasePositionAndOrientation(robot)
            heading = math.atan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
            yaw_rate = -_STEER_GAIN_Y * y - _STEER_GAIN_HEADING * heading
            sim.step(*limiter(speed, max(-_STEER_LIMIT, min(_STEER_LIMIT, yaw_rate))))
            position, quaternion = client.getBasePositionAndOrientation(robot)
            velocity, omega = client.getBaseVelocity(robot)
            log.append((*quaternion, *velocity, *omega, position[0]))
            if record_step is None:
                row = client.getMatrixFromQuaternion(quaternion)[0:3]
                axle_x = position[0] + sum(r * o for r, o in zip(row, axle_from_com, strict=True))
                if axle_x >= trigger_x:
                    record_step = step
            elif step >= record_step + RUN_SECONDS / dt + 2:
                break
        else:
            raise RuntimeError(f"run {plan_row.run_id}: the device did not ride {RUN_SECONDS} s on the "
                               f"surface (pose {sim.pose()}). / デバイスが路面上を走り切れませんでした。")
        truth["final_pose"] = sim.pose().round(3).tolist()
    log = np.asarray(log)
    travelled = float(log[-1, 10] - log[record_step, 10])
    truth["ground_speed_mps"] = round(travelled / ((len(log) - 1 - record_step) * dt), 4)
    rotation = _rotations(log[:, 0:4])
    velocity, omega = log[:, 4:7], log[:, 7:10]  # (column 10 is the CoM's x)
    # Velocity of the IMU's point: v_CoM + omega x r, with r the CoM -> IMU vector in the world.
    arm = np.einsum("nij,j->ni", rotation, imu_from_com)
    point_velocity = velocity + np.cross(omega, arm)
    acceleration = np.vstack([np.zeros((1, 3)), np.diff(point_velocity, axis=0) / dt])
    specific_force = np.einsum("nji,nj->ni", rotation, acceleration + [0.0, 0.0, GRAVITY_MPS2])
    body_rate = np.einsum("nji,nj->ni", rotation, omega)
    t_start = (record_step + 1) * dt  # log row k is the state after step k, at time (k + 1) dt
    accel = _box_average(specific_force, dt, t_start, n_samples, period)
    gyro = _box_average(body_rate, dt, t_start, n_samples, period)
    clean = np.column_stack([accel, gyro])

    accel_noisy = accel + rng.normal(0, ACCEL_BIAS_MPS2, 3) + rng.normal(0, ACCEL_NOISE_MPS2, accel.shape)
    gyro_noisy = gyro + rng.normal(0, GYRO_BIAS_RADPS, 3) + rng.normal(0, GYRO_NOISE_RADPS, gyro.shape)
    accel_noisy = np.clip(accel_noisy, -ACCEL_RANGE_MPS2, ACCEL_RANGE_MPS2)
    gyro_noisy = np.clip(gyro_noisy, -GYRO_RANGE_RADPS, GYRO_RANGE_RADPS)

    frame = pd.DataFrame({
        "run_id": int(plan_row.run_id),
        "surface": plan_row.surface,
        "speed_mps": speed,
        "t_s": np.round(np.arange(n_samples) * period, 2),
    })
    for k, column in enumerate(ACCEL_COLUMNS):
        frame[column] = np.round(accel_noisy[:, k], 3) + 0.0  # + 0.0 turns -0.0 into 0.0
    for k, column in enumerate(GYRO_COLUMNS):
        frame[column] = np.round(gyro_noisy[:, k], 4) + 0.0
    if return_truth:
        truth["clean"] = clean
        return frame, truth
    return frame


# ------------------------------------------------------------------------------ the dataset


def make_ride_imu(seed: int = RIDE_IMU_SEED, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Simulate every run of :func:`ride_plan`; returns ``{"runs.csv": plan, "imu.csv": samples}``.

    Takes about half a minute (one pybullet world per run); ``progress=True`` shows a tqdm bar.
    """
    plan = ride_plan(seed)
    rows = plan.itertuples(index=False)
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, total=len(plan), desc="ride-imu", unit="run")
    samples = pd.concat([simulate_run(row) for row in rows], ignore_index=True)
    return {"runs.csv": plan, "imu.csv": samples}


def write_ride_imu(folder: Path, seed: int = RIDE_IMU_SEED, progress: bool = False) -> None:
    """Write ``runs.csv`` and ``imu.csv`` into ``folder`` (UTF-8, LF; same bytes for the same seed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in make_ride_imu(seed, progress=progress).items():
        table.to_csv(folder / name, index=False, lineterminator="\n")


def _folder(folder) -> Path:
    if folder is None:
        from . import dataset_path

        return dataset_path("ride-imu")
    return Path(folder)


def _read(folder, name: str) -> pd.DataFrame:
    path = _folder(folder) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{name} not found in {path.parent}: rebuild with `sscity data build`. / "
            f"{path.parent} に {name} がありません。`sscity data build` で作り直してください。")
    return pd.read_csv(path)


def load_ride_imu(folder: Path | None = None) -> pd.DataFrame:
    """Load the SIMULATED ride IMU samples: one row per 10-ms sample of one run.

    Parameters
    ----------
    folder : path, optional
        The folder holding ``imu.csv``; default the course's ``datasets/ride-imu``.

    Returns
    -------
    pandas.DataFrame
        ``run_id`` (int), ``surface`` (str: smooth, tactile_paving, gravel, curb_cut, ramp),
        ``speed_mps`` (commanded), ``t_s`` (from 0 in each run), ``ax_mps2, ay_mps2, az_mps2``
        (specific force, body frame x forward, y left, z up; ≈ +9.81 on level ground) and
        ``gx_radps, gy_radps, gz_radps`` (body angular rate). Rows are sorted by run, then time.

    Examples
    --------
    >>> imu = load_ride_imu()
    >>> sorted(imu["surface"].unique())
    ['curb_cut', 'gravel', 'ramp', 'smooth', 'tactile_paving']
    """
    return _read(folder, "imu.csv")


def load_ride_runs(folder: Path | None = None) -> pd.DataFrame:
    """One row per run of ``ride-imu``: surface, speed, seed, rider posture, tyre, ramp slope."""
    return _read(folder, "runs.csv")
