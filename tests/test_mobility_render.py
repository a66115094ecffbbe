"""Headless frames, PNG / GIF files and the top-down plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from sscity.mobility import (  # noqa: E402
    QoloSim,
    capsule_outline,
    frame_strip,
    plot_scene,
    render_frame,
    save_gif,
    save_png,
)


def test_frame_png_and_gif(tmp_path):
    frames = []
    with QoloSim(seed=0) as sim:
        sim.add_pedestrian((1.5, 0.5))
        for _ in range(3):
            sim.step(0.8, 0.0, n_steps=24)
            frames.append(render_frame(sim, width=96, height=72))
    frame = frames[0]
    assert frame.shape == (72, 96, 3) and frame.dtype == np.uint8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 10  # a picture, not a blank
    # the vermillion pedestrian is in view
    red = (frame[..., 0] > 150) & (frame[..., 1] < 130) & (frame[..., 2] < 80)
    assert red.sum() > 5
    png = save_png(frame, tmp_path / "frame.png")
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), frame)
    gif = save_gif(frames, tmp_path / "drive.gif", frame_ms=80)
    with Image.open(gif) as image:
        assert image.n_frames == 3 and image.info["loop"] == 0
    assert _durations(gif) == [80, 80, 1500]  # the last frame is held 1.5 s before the loop
    assert _durations(save_gif(frames, tmp_path / "hold.gif", frame_ms=80, hold_last_ms=400)) == [80, 80, 400]
    assert _durations(save_gif(frames, tmp_path / "even.gif", frame_ms=80, hold_last_ms=0)) == [80, 80, 80]
    assert _durations(save_gif(frames[:1], tmp_path / "one.gif", frame_ms=80)) == [1500]
    assert gif.stat().st_size < 200_000
    strip = frame_strip(frames, n=3, gap_px=2)
    assert strip.shape == (72, 3 * 96 + 2 * 2, 3) and strip.dtype == np.uint8
    assert np.array_equal(strip[:, :96], frames[0]) and np.array_equal(strip[:, -96:], frames[-1])
    assert (strip[:, 96:98] == 255).all()  # white gap
    assert frame_strip(frames, n=10).shape[1] == 3 * 96 + 2 * 4  # never more frames than there are
    with pytest.raises(ValueError, match="hold_last_ms"):
        save_gif(frames, tmp_path / "bad.gif", hold_last_ms=-1)
    with pytest.raises(ValueError, match="same size"):
        frame_strip([frames[0], frames[0][:10]])
    with pytest.raises(ValueError, match="RGB uint8"):
        save_png(np.zeros((4, 4)), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="at least one frame"):
        save_gif([], tmp_path / "empty.gif")


def _durations(path) -> list[int]:
    with Image.open(path) as image:
        out = []
        for k in range(image.n_frames):
            image.seek(k)
            out.append(image.info["duration"])
    return out


def test_capsule_outline_is_the_footprint():
    outline = capsule_outline([1.0, 2.0, 0.0])  # CrowdBot's evaluation capsule
    assert outline[0] == pytest.approx(outline[-1])  # closed
    assert outline[:, 0].max() == pytest.approx(1.0 + 0.18 + 0.45)
    assert outline[:, 0].min() == pytest.approx(1.0 - 0.5 - 0.45, abs=1e-3)
    assert outline[:, 1].max() == pytest.approx(2.45)
    rds = capsule_outline([1.0, 2.0, 0.0], "rds")  # the controller's capsule
    assert rds[:, 0].max() == pytest.approx(1.0 + 0.05 + 0.4)
    assert rds[:, 0].min() == pytest.approx(1.0 - 0.5 - 0.4, abs=1e-3)
    assert rds[:, 1].max() == pytest.approx(2.4)


def test_plot_scene_draws_every_element():
    poses = np.c_[np.linspace(0, 5, 20), np.zeros(20), np.zeros(20)]
    peds = np.random.default_rng(0).uniform(0, 5, size=(20, 3, 2))
    ax = plot_scene(poses, peds, goal_xy=(6, 0), walls=[((0, -2), (6, -2))], title="test")
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {
        "device path",
        "capsule footprint",
        "pedestrian",
        "pedestrian tracks",
        "wall",
        "goal",
        "start",
    } <= labels
    assert ax.get_xlabel() == "x (m)" and ax.get_title() == "test"
    matplotlib.pyplot.close(ax.figure)


@pytest.mark.parametrize("statement", [
    "import sscity.mobility.world",
    "import sscity.mobility.render",
    "from sscity.mobility import QoloSim, render_frame, run_episode",
])
def test_importing_the_simulation_prints_nothing_on_stderr(statement):
    """pybullet prints "pybullet build time: ..." on the C-level stderr when imported; a
    notebook shows that as a red band under module 04's first cell."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", f"{statement!r} printed on stderr: {done.stderr!r}"
