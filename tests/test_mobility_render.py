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


def _bilingual(text: str) -> bool:
    import re

    return bool(re.search(r"[A-Za-z]{2,}", text)) and bool(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text))


def _legend_clear_of_axes(ax, legend=None) -> bool:
    """Whether the legend is drawn outside the axes (it covers none of the data)."""
    figure = ax.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend = legend or ax.get_legend()
    box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    return not box.overlaps(area)


def test_plot_scene_draws_every_element_with_bilingual_labels_and_the_legend_outside():
    poses = np.c_[np.linspace(0, 5, 20), np.zeros(20), np.zeros(20)]
    peds = np.random.default_rng(0).uniform(0, 5, size=(20, 3, 2))
    ax = plot_scene(poses, peds, goal_xy=(6, 0), walls=[((0, -2), (6, -2))], title="test")
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    english = {"device path", "capsule footprint", "pedestrian", "pedestrian tracks", "wall", "goal", "start"}
    assert {label.split(" / ")[0] for label in labels} == english
    assert all(_bilingual(label) for label in labels), labels
    assert ax.get_xlabel() == "x (m)" and ax.get_title() == "test"
    assert _legend_clear_of_axes(ax)
    assert min(t.get_fontsize() for t in ax.get_legend().get_texts()) >= 9  # readable
    matplotlib.pyplot.close(ax.figure)
    ax = plot_scene(poses, peds, legend=False)
    assert ax.get_legend() is None
    matplotlib.pyplot.close(ax.figure)


def _point_to_polyline_pt(point, line, figure) -> float:
    """Distance in points from a display point to a drawn line."""
    xy = line.get_transform().transform(line.get_xydata())
    a, b = xy[:-1], xy[1:]
    ab = b - a
    t = np.clip(((point - a) * ab).sum(axis=1) / np.maximum((ab * ab).sum(axis=1), 1e-12), 0, 1)
    return float(np.min(np.hypot(*(a + t[:, None] * ab - point).T))) * 72 / figure.dpi


def test_route_map_sets_unused_stairs_beside_the_routes_and_keeps_its_legend_outside():
    from sscity.mobility import accessible_route, find_node, load_sidewalks, shortest_route
    from sscity.mobility.routing import OFF_ROUTE_PT, plot_route_map

    graph = load_sidewalks()
    station = find_node(graph, "Tsukuba Station (TX) concourse")
    campus = find_node(graph, "University of Tsukuba, central area")
    routes = {"walking / 歩行者": shortest_route(graph, station, campus),
              "Qolo": accessible_route(graph, station, campus, "qolo")}
    ax = plot_route_map(graph, routes, places={station: "station / 駅"}, title="map / 地図")
    figure = ax.figure
    figure.canvas.draw()
    drawn = [line for line in ax.get_lines() if line.get_gid() == "route"]
    assert len(drawn) == 2
    used = {frozenset(e) for r in routes.values() for e in zip(r.nodes[:-1], r.nodes[1:], strict=True)}
    stairs = [line for line in ax.get_lines() if line.get_gid() == "barrier:stairs"]
    from sscity.mobility import barrier_table

    table = barrier_table(graph)
    flights = table.loc[table["kind"] == "stairs", ["u", "v"]].to_numpy()
    assert len(stairs) == len(flights)
    assert sum(frozenset(e) in used for e in flights) == 1  # walking takes the station stairs
    beside = 0
    for marker in stairs:
        point = marker.get_transform().transform(marker.get_xydata())[0]
        gap = min(_point_to_polyline_pt(point, line, figure) for line in drawn)
        if gap > 1.0:
            beside += 1
            # clear of the widest route (4.5 pt) and the marker's own half size (4.5 pt)
            assert gap >= 8.0, f"a stairs marker sits {gap:.1f} pt from a route: it looks taken"
    assert beside >= 5  # the deck's stairs: beside the deck, not on it
    assert OFF_ROUTE_PT >= 10
    assert _legend_clear_of_axes(ax)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert all(_bilingual(t) for t in texts if t.startswith("barrier")), texts
    assert _bilingual(ax.get_xlabel()) and _bilingual(ax.get_ylabel())
    matplotlib.pyplot.close(figure)


@pytest.mark.parametrize("statement", [
    "import sscity.mobility.world",
    "import sscity.mobility.render",
    "from sscity.mobility import QoloSim, render_frame, run_episode",
    "from sscity.mobility import QoloSim\nwith QoloSim(seed=0):\n    pass",
])
def test_the_simulation_prints_nothing_from_c(statement):
    """pybullet prints "pybullet build time: ..." on the C-level stderr when imported, and
    "argv[0]=" on stdout when a client connects; a notebook shows them under module 04's
    first cells (stderr as a red band)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", f"{statement!r} printed on stderr: {done.stderr!r}"
    assert done.stdout == "", f"{statement!r} printed on stdout: {done.stdout!r}"
