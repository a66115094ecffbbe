"""Pictures of a simulation: headless camera frames, PNG and GIF files, and a top-down plot.

- :func:`render_frame` asks pybullet's CPU renderer (``ER_TINY_RENDERER``; no GPU, no
  window) for an RGB image from a camera that follows the device.
- :func:`save_png` and :func:`save_gif` write frames with Pillow. Keep GIFs small -- a few
  dozen frames of 320 x 240 -- so notebooks stay light. A GIF loops forever, so it holds its
  last frame for ``hold_last_ms`` (1.5 s) before starting again: the reader sees where the run
  ended. :func:`frame_strip` lays a few frames side by side in one still image, for print
  and for readers who prefer not to watch an animation.
- :func:`plot_scene` draws the scene from above with matplotlib in the course style: the
  device's path, its capsule footprint, pedestrians and their tracks, walls and the goal.
  Information is never carried by colour alone: every element has a marker or line style
  and a legend entry.

Run ``python -m sscity.mobility.render`` to write ``qolo_frame.png`` and ``qolo_scene.png``
into the current folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metrics import capsule_distance, get_capsule  # noqa: F401  (capsule_distance: the plot's companion)
from .params import QoloParams
from .world import pb  # pybullet, imported quietly (no "build time" line on stderr)

__all__ = ["SCENE_LABELS", "capsule_outline", "frame_strip", "plot_scene", "render_frame", "save_gif",
           "save_png"]

#: The legend labels of :func:`plot_scene`, English / Japanese.
SCENE_LABELS = {
    "pedestrian tracks": "pedestrian tracks / 歩行者の軌跡",
    "pedestrian": "pedestrian / 歩行者",
    "wall": "wall / 壁",
    "device path": "device path / 機体の経路",
    "capsule footprint": "capsule footprint / カプセル形の占有領域",
    "start": "start / 出発点",
    "goal": "goal / 目標",
}


def render_frame(
    sim,
    width: int = 320,
    height: int = 240,
    distance_m: float = 5.0,
    yaw_deg: float = -60.0,
    pitch_deg: float = -35.0,
    target_xyz: Sequence[float] | None = None,
    fov_deg: float = 60.0,
) -> np.ndarray:
    """An RGB frame ``(height, width, 3)`` of ``sim`` from a camera looking at the device.

    Parameters
    ----------
    sim : QoloSim
    width, height : int
        Image size in pixels (keep it small: the CPU renderer takes ~10-50 ms per frame).
    distance_m, yaw_deg, pitch_deg : float
        Camera distance from the target, and its orbit angles.
    target_xyz : (x, y, z), optional
        Point looked at; default the device's axle centre, 0.5 m up.
    """
    if width <= 0 or height <= 0 or width * height > 1920 * 1080:
        raise ValueError("width and height must be positive and at most full-HD in total.")
    if target_xyz is None:
        x, y, _ = sim.pose()
        target_xyz = (x, y, 0.5)
    c = sim.client
    view = c.computeViewMatrixFromYawPitchRoll(
        cameraTargetPosition=list(target_xyz),
        distance=distance_m,
        yaw=yaw_deg,
        pitch=pitch_deg,
        roll=0.0,
        upAxisIndex=2,
    )
    projection = c.computeProjectionMatrixFOV(fov=fov_deg, aspect=width / height, nearVal=0.05, farVal=100.0)
    _, _, rgba, _, _ = c.getCameraImage(
        width, height, viewMatrix=view, projectionMatrix=projection, renderer=pb.ER_TINY_RENDERER, shadow=0
    )
    return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()


def save_png(frame: np.ndarray, path: str | Path) -> Path:
    """Write one RGB frame as PNG; returns the path."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(_check_frame(frame)).save(path, format="PNG", optimize=True)
    return path


def save_gif(
    frames: Sequence[np.ndarray],
    path: str | Path,
    frame_ms: int = 100,
    colours: int = 64,
    hold_last_ms: int = 1500,
) -> Path:
    """Write frames as a looping animated GIF (palette of ``colours`` colours); returns the path.

    Every frame shows for ``frame_ms``; the last one for ``hold_last_ms`` (1.5 s; at least
    ``frame_ms``), a pause before the loop starts again. ``hold_last_ms=0`` gives the last
    frame the same time as the others.
    """
    from PIL import Image

    if len(frames) == 0:
        raise ValueError("save_gif needs at least one frame.")
    if frame_ms <= 0 or hold_last_ms < 0:
        raise ValueError("frame_ms must be > 0 and hold_last_ms >= 0 (milliseconds).")
    images = [
        Image.fromarray(_check_frame(f)).convert("P", palette=Image.Palette.ADAPTIVE, colors=colours)
        for f in frames
    ]
    durations = [int(frame_ms)] * len(images)
    durations[-1] = max(int(frame_ms), int(hold_last_ms))
    path = Path(path)
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations if len(images) > 1 else durations[0],
        loop=0,
        optimize=True,
    )
    return path


def frame_strip(frames: Sequence[np.ndarray], n: int = 5, gap_px: int = 4) -> np.ndarray:
    """``n`` frames, evenly spaced from the first to the last, side by side in one RGB image.

    A still alternative to :func:`save_gif`: save it with :func:`save_png` or show it with
    ``imshow``. White gaps of ``gap_px`` pixels separate the frames.

    Returns
    -------
    ndarray, shape (height, n * width + (n - 1) * gap_px, 3), uint8
    """
    if len(frames) == 0:
        raise ValueError("frame_strip needs at least one frame.")
    if n < 1 or gap_px < 0:
        raise ValueError("n must be >= 1 and gap_px >= 0.")
    checked = [_check_frame(f) for f in frames]
    if len({f.shape for f in checked}) != 1:
        raise ValueError("All frames must have the same size.")
    picks = np.unique(np.round(np.linspace(0, len(checked) - 1, min(n, len(checked)))).astype(int))
    height = checked[0].shape[0]
    gap = np.full((height, gap_px, 3), 255, dtype=np.uint8)
    parts = []
    for k, index in enumerate(picks):
        if k:
            parts.append(gap)
        parts.append(checked[index])
    return np.concatenate(parts, axis=1)


def _check_frame(frame) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"A frame is an RGB uint8 array (height, width, 3); got {frame.shape} {frame.dtype}."
        )
    return frame


def capsule_outline(pose, params="crowdbot", n: int = 25) -> np.ndarray:
    """Closed outline ``(2n + 1, 2)`` of a capsule footprint at ``pose``, for plotting.

    ``params`` is the footprint as in :func:`~sscity.mobility.metrics.capsule_distance`:
    CrowdBot's evaluation capsule by default, ``"rds"`` or a QoloParams for the controller's.
    """
    x, y, theta = (float(a) for a in pose)
    capsule = get_capsule(params)
    r, front, rear = capsule.radius_m, capsule.front_m, capsule.rear_m
    a_front = np.linspace(-np.pi / 2, np.pi / 2, n)
    a_rear = np.linspace(np.pi / 2, 3 * np.pi / 2, n)
    local = np.vstack(
        [
            np.c_[front + r * np.cos(a_front), r * np.sin(a_front)],
            np.c_[rear + r * np.cos(a_rear), r * np.sin(a_rear)],
        ]
    )
    local = np.vstack([local, local[:1]])
    c, s = np.cos(theta), np.sin(theta)
    return np.c_[x + c * local[:, 0] - s * local[:, 1], y + s * local[:, 0] + c * local[:, 1]]


def plot_scene(
    poses=None,
    pedestrians_xy=None,
    goal_xy=None,
    walls=(),
    ax=None,
    title: str | None = None,
    params: QoloParams | str = "crowdbot",
    pedestrian_radius_m: float = 0.25,
    legend: bool = True,
):
    """Top-down plot of a run: device path and footprint, pedestrians, walls and goal.

    Every label is in English and Japanese (:data:`SCENE_LABELS`). The legend sits below the
    axes, outside them, so it never covers the scene; with ``legend=False`` there is none
    (draw one for a whole figure with ``fig.legend(*ax.get_legend_handles_labels())``).

    The footprint drawn is the capsule the distances are measured to (``params``, CrowdBot's
    evaluation capsule by default, as :func:`~sscity.mobility.metrics.capsule_distance`).

    Parameters
    ----------
    poses : array (T, 3), optional
        Device poses over time; the footprint is drawn at the last one.
    pedestrians_xy : array (N, 2) or (T, N, 2), optional
        Pedestrian positions; with a time axis, their tracks are drawn faintly and the last
        positions as circles.
    goal_xy : (x, y), optional
    walls : sequence of ((x0, y0), (x1, y1))
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    from sscity.plotting import PALETTE, use_course_style

    use_course_style()
    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 5.0))
    if pedestrians_xy is not None:
        peds = np.asarray(pedestrians_xy, dtype=float)
        if peds.ndim == 3:
            for k in range(peds.shape[1]):
                ax.plot(
                    peds[:, k, 0],
                    peds[:, k, 1],
                    color=PALETTE["vermillion"],
                    alpha=0.25,
                    lw=0.8,
                    ls=":",
                    label=SCENE_LABELS["pedestrian tracks"] if k == 0 else None,
                )
            peds = peds[-1]
        for k, (px, py) in enumerate(peds):
            ax.add_patch(
                Circle(
                    (px, py),
                    pedestrian_radius_m,
                    facecolor="none",
                    edgecolor=PALETTE["vermillion"],
                    hatch="////",
                    lw=1.0,
                    label=SCENE_LABELS["pedestrian"] if k == 0 else None,
                )
            )
    for k, (start, end) in enumerate(walls):
        ax.plot(
            [start[0], end[0]],
            [start[1], end[1]],
            color=PALETTE["black"],
            lw=3,
            label=SCENE_LABELS["wall"] if k == 0 else None,
        )
    if poses is not None:
        poses = np.asarray(poses, dtype=float)
        ax.plot(poses[:, 0], poses[:, 1], color=PALETTE["blue"], lw=2, label=SCENE_LABELS["device path"])
        outline = capsule_outline(poses[-1], params)
        ax.plot(
            outline[:, 0], outline[:, 1], color=PALETTE["blue"], lw=1.5, ls="--",
            label=SCENE_LABELS["capsule footprint"],
        )
        ax.plot(*poses[0, :2], marker="o", color=PALETTE["blue"], ls="none", label=SCENE_LABELS["start"])
    if goal_xy is not None:
        ax.plot(
            goal_xy[0],
            goal_xy[1],
            marker="*",
            markersize=14,
            color=PALETTE["bluish_green"],
            ls="none",
            label=SCENE_LABELS["goal"],
        )
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, borderaxespad=0.0)
    return ax


def main() -> None:
    """Render one frame of the device beside a pedestrian and a top-down plot of a short drive."""
    import matplotlib

    matplotlib.use("Agg")
    from .world import QoloSim

    with QoloSim(seed=0) as sim:
        sim.add_pedestrian((2.0, 0.8))
        poses = [sim.pose()]
        for _ in range(48):
            sim.step(1.0, 0.2, n_steps=5)
            poses.append(sim.pose())
        print("wrote", save_png(render_frame(sim), "qolo_frame.png"))
    ax = plot_scene(np.array(poses), [[2.0, 0.8]], goal_xy=(3.0, 1.0), title="A short drive / 短い走行")
    ax.figure.savefig("qolo_scene.png", bbox_inches="tight")
    print("wrote qolo_scene.png")


if __name__ == "__main__":
    main()
