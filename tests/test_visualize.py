"""visualize_hd.py end to end: images for Car1D and a HalfCheetah-size policy, region counts equal to the core's
partition, GIF frames per checkpoint, reproducible planes, and every bad input as one line with exit code 2."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import visualize_hd
from models.checkpoint import load_checkpoint
from models.normalization import EPSILON
from tests.helpers import TINY_CAR1D, TINY_CHEETAH, assert_one_line_error, run_cli, train_run
from tests.reference_regions import plane_partition_ref
from utils.errors import UserError, run_cli as run_main
from utils.geometry.planes import plane_partition, plane_through_states
from utils.analysis.trajectories import sample_episode
from utils.pictures.state_planes import choose_three_states, clipped_hidden_layers, sample_states, visited_view
from utils.jobs.visualize import _evenly_spaced, plan_job, run_job, sheet_grid, view_suffix
from utils.settings import PLANE_SCALE, VisualizeSettings

CAR = TINY_CAR1D
CHEETAH = TINY_CHEETAH


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A run store with a tiny Car1D run (3 checkpoints) and a tiny HalfCheetah run (c16,16)."""
    save_dir = tmp_path_factory.mktemp("store")
    for flags, run_id in ((CAR, "car"), (CHEETAH, "cheetah")):
        train_run(save_dir, run_id, *flags)
    return save_dir


def _regions(stdout: str) -> list[int]:
    return [int(line.rsplit("regions:", 1)[1]) for line in stdout.splitlines() if "regions:" in line]


def _written(stdout: str) -> list[str]:
    return [line[len("wrote "):] for line in stdout.splitlines() if line.startswith("wrote ")]


def _state_space_partition(policy, xlim, ylim, clip: bool):
    """The Car1D state-space box partitioned by the independent reference implementation (tests/reference_regions.py),
    the plane built here independently of utils.pictures.state_planes; the core must agree with it too."""
    std = np.sqrt(policy.obs_var + EPSILON)
    origin, basis = -policy.obs_mean / std, np.diag(1.0 / std)
    (x0, x1), (y0, y1) = xlim, ylim
    domain = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    layers = clipped_hidden_layers(policy) if clip else policy.hidden_layers
    ref = plane_partition_ref([(np.asarray(W), np.asarray(b)) for W, b in layers], origin, basis, domain)
    assert plane_partition(layers, policy.head, (origin, basis), domain).num_regions == ref["num_regions"]
    return SimpleNamespace(num_regions=ref["num_regions"])


def test_car1d_image_size_and_region_count(store, tmp_path, capfd):
    ckpt = store / "car" / "checkpoints" / "000002.pt"
    out = tmp_path / "plots" / "nested"  # created when missing
    assert visualize_hd.main(["--env=envs:Car1DEnv-v1", f"--policy_path={ckpt}", f"--stats_path={ckpt}",
                              f"--save_path={out}", "--view=env", "--quiet"]) == 0
    result = capfd.readouterr()
    (path,) = _written(result.out)
    assert path.endswith(".png") and (out / "car_it000002_region_envbox.png").is_file()
    with Image.open(path) as im:
        assert im.size == (960, 720)  # 6.4 x 4.8 inches at the default 150 dpi
    policy = load_checkpoint(ckpt)
    expected = _state_space_partition(policy, (-50, 150), (-20, 20), clip=True).num_regions
    assert _regions(result.out) == [expected]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_car1d_unclipped_counts_equal_bare_network_partition(store, tmp_path):
    ckpt = store / "car" / "best.pt"
    args = [f"--policy_path={ckpt}", f"--save_path={tmp_path}", "--unclipped", "--xlim=-5,20", "--ylim=-3,3",
            "--color=action", "--dpi=100"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert visualize_hd.main([*args, "--quiet"]) == 0
    policy = load_checkpoint(ckpt)
    assert _regions(buf.getvalue()) == [_state_space_partition(policy, (-5, 20), (-3, 3), clip=False).num_regions]
    with Image.open(_written(buf.getvalue())[0]) as im:
        assert im.size == (730, 480)  # (6.4 + 0.9 colour bar) x 4.8 inches at 100 dpi


def test_cheetah_image_matches_core_partition_on_the_papers_plane(store, tmp_path, capfd):
    best = store / "cheetah" / "best.pt"
    assert visualize_hd.main(["--env=HalfCheetah-v2", f"--policy_path={best}", f"--save_path={tmp_path}",
                              "--num_episodes=2", "--seed=3", "--unclipped", "--quiet"]) == 0
    result = capfd.readouterr()  # file-descriptor level: MuJoCo's own (C) output would show here too
    assert result.err.strip().splitlines() == [
        "notice: HalfCheetah-v2 needs mujoco-py, which no longer installs; using the maintained HalfCheetah-v5"]
    (path,) = _written(result.out)
    with Image.open(path) as im:
        assert im.size == (810, 810)  # 5.4 x 5.4 inches at 150 dpi
    # The paper's construction straight from the core, in the policy's normalized input space.
    policy = load_checkpoint(best)
    states = choose_three_states(sample_states("HalfCheetah-v5", policy, 2, 3), policy, 3)
    std = np.sqrt(policy.obs_var + EPSILON)
    x = (states - policy.obs_mean) / std
    plane = plane_through_states(*x, scale=PLANE_SCALE)
    ref = plane_partition_ref([(W.numpy(), b.numpy()) for W, b in policy.hidden_layers], plane.origin, plane.basis,
                              plane.domain)
    assert _regions(result.out) == [ref["num_regions"]] and ref["num_regions"] > 10


@pytest.mark.parametrize("fmt, magic", [("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_vector_formats(store, tmp_path, fmt, magic):
    settings = VisualizeSettings(policy_path=str(store / "car" / "best.pt"), save_path=tmp_path, format=fmt, quiet=True)
    result = run_job(plan_job(settings))
    (path,) = result.paths
    assert path.suffix == f".{fmt}" and path.read_bytes().startswith(magic)


def test_all_checkpoints_gif_has_one_frame_per_checkpoint(store, tmp_path, capfd):
    assert visualize_hd.main(["--run_id=car", f"--checkpoints_dir={store}", "--all_checkpoints",
                              f"--save_path={tmp_path}", "--color=slope"]) == 0
    stdout = capfd.readouterr().out
    gif, sheet = (tmp_path / "car_evolution_slope.gif"), (tmp_path / "car_contact_slope.png")
    assert sorted(_written(stdout)) == sorted([str(gif), str(sheet)])
    n_ckpt = len(list((store / "car" / "checkpoints").glob("*.pt")))
    with Image.open(gif) as im:
        assert im.n_frames == n_ckpt == 3 and im.size == (1095, 720)
    assert len(_regions(stdout)) == n_ckpt
    with Image.open(sheet) as im:
        assert im.size[0] > im.size[1] > 0


def test_same_seed_gives_the_same_plane_and_image(store, tmp_path):
    def plane(seed):
        settings = VisualizeSettings(run_id="cheetah", checkpoints_dir=store, save_path=tmp_path / str(seed),
                                     num_episodes=2, seed=seed, quiet=True)
        return plan_job(settings)

    a, b, c = plane(5), plane(5), plane(6)
    np.testing.assert_array_equal(a.plane.states, b.plane.states)
    np.testing.assert_array_equal(a.plane.origin, b.plane.origin)
    np.testing.assert_array_equal(a.plane.basis, b.plane.basis)
    assert not np.array_equal(a.plane.states, c.plane.states)
    pa, pb = run_job(a).paths[0], run_job(b).paths[0]
    assert pa.read_bytes() == pb.read_bytes()


def test_evolution_frames_share_the_three_states(store, tmp_path):
    job = plan_job(VisualizeSettings(run_id="cheetah", checkpoints_dir=store, save_path=tmp_path, num_episodes=2,
                                     all_checkpoints=True, quiet=True))
    result = run_job(job)
    frames = [row[0] for row in result.frames]
    assert len(frames) == len(list((store / "cheetah" / "checkpoints").glob("*.pt")))
    for f in frames:  # every checkpoint's plane goes through its own normalized images of the same raw states
        origin, basis = (f.plane.origin - f.policy.obs_mean) / np.sqrt(f.policy.obs_var + EPSILON), \
            f.plane.basis / np.sqrt(f.policy.obs_var + EPSILON)
        x = f.policy.normalize(f.plane.states)
        np.testing.assert_allclose(origin + f.plane.state_coords @ basis, x, atol=1e-9)


def test_the_plan_is_frozen_and_run_dir_names_a_run(store, tmp_path):
    ckpt = store / "car" / "checkpoints" / "000001.pt"
    settings = VisualizeSettings(run_dir=str(store / "car"), stats_path=str(ckpt), save_path=tmp_path, quiet=True)
    job = plan_job(settings)
    assert settings.run == str(store / "car") and job.settings is settings
    (series,) = job.series
    assert series.label == "car" and job.plane.kind == "state_space" and not job.animate
    best = load_checkpoint(store / "car" / "best.pt")
    stats = load_checkpoint(ckpt)
    np.testing.assert_array_equal(series.policies[0].obs_mean, stats.obs_mean)  # --stats_path applied
    np.testing.assert_array_equal(series.policies[0].hidden_layers[0][0], best.hidden_layers[0][0])
    for frozen, name in ((job, "series"), (series, "policies"), (job.settings, "scale")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(frozen, name, None)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device=cpu"):
            plan_job(dataclasses.replace(settings, device="cuda"))


@pytest.mark.slow
def test_stats_path_changes_what_is_drawn_not_the_plane(store, tmp_path):
    """--stats_path overrides the drawn checkpoints' statistics; the plane (from the run's best policy and its own
    statistics) stays where it was, so pictures with and without it are of the same slice of state space."""
    run = store / "cheetah"
    other = load_checkpoint(run / "checkpoints" / "000000.pt")
    assert not np.array_equal(other.obs_mean, load_checkpoint(run / "best.pt").obs_mean)
    plain = plan_job(VisualizeSettings(run_dir=str(run), save_path=tmp_path, quiet=True, num_episodes=1))
    swapped = plan_job(VisualizeSettings(run_dir=str(run), save_path=tmp_path, quiet=True, num_episodes=1,
                                         stats_path=str(run / "checkpoints" / "000000.pt")))
    for name in ("origin", "basis", "domain", "states"):
        np.testing.assert_array_equal(getattr(swapped.plane, name), getattr(plain.plane, name))
    np.testing.assert_array_equal(swapped.series[0].policies[0].obs_mean, other.obs_mean)
    np.testing.assert_array_equal(swapped.series[0].reference.obs_mean, plain.series[0].reference.obs_mean)


def test_compare_runs_side_by_side(store, tmp_path):
    other = run_cli("train.py", *[a for a in CAR if not a.startswith("--policy_dims")], "--policy_dims=c16,16",
                    f"--save_dir={store}", "--run_id=car16")
    assert other.returncode == 0, other.stderr
    result = run_cli("visualize_hd.py", f"--checkpoints_dir={store}", "--compare", "car", "car16",
                     "--all_checkpoints", f"--save_path={tmp_path}", "--quiet")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "compare_car-car16_evolution_region.gif") as im:
        assert im.n_frames == 3 and im.size == (1920, 780)  # two 6.4 x 4.8 panels + a title strip
    assert len(_regions(result.stdout)) == 6


# --------------------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------------------
def _bad_cases(store, tmp):
    truncated = tmp / "truncated.pt"
    data = (store / "car" / "best.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    empty_run = store / "empty"
    if not empty_run.exists():
        (empty_run / "checkpoints").mkdir(parents=True)
        (empty_run / "run.json").write_text(json.dumps({"status": "failed"}))
    blocker = tmp / "a_file"
    blocker.write_text("x")
    best = store / "car" / "best.pt"
    out = f"--save_path={tmp / 'out'}"
    return [
        ([f"--policy_path={tmp / 'missing.pt'}", out], ("not found",)),
        ([f"--policy_path={truncated}", out], ("truncated", "truncated.pt")),
        ([f"--policy_path={best}", f"--stats_path={truncated}", out], ("truncated",)),
        ([f"--policy_path={best}", "--env=HalfCheetah-v5", out], ("observes 17", "takes 2")),
        ([f"--policy_path={best}", "--xlim=5,5", out], ("--xlim", "MIN < MAX")),
        ([f"--policy_path={best}", "--ylim=3,-3", out], ("--ylim",)),
        ([f"--policy_path={best}", "--xlim=abc", out], ("--xlim",)),
        ([f"--run_id=empty", f"--checkpoints_dir={store}", "--all_checkpoints", out], ("no checkpoints",)),
        ([f"--run_id=nosuchrun", f"--checkpoints_dir={store}", out], ("no run 'nosuchrun'",)),
        ([f"--policy_path={best}", f"--save_path={blocker}/sub"], ("--save_path",)),
        ([f"--policy_path={best}", "--all_checkpoints", out], ("--all_checkpoints needs a run",)),
        ([out], ("--policy_path",)),
        ([f"--policy_path={store / 'cheetah' / 'best.pt'}", "--xlim=0,1", out], ("--xlim",)),
        ([f"--policy_path={best}", "--color=rainbow", out], ("--color",)),
    ]


def test_bad_inputs_fail_with_one_line_and_write_nothing(store, tmp_path, capsys):
    for argv, needles in _bad_cases(store, tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            run_main(visualize_hd.main, [*argv, "--quiet"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, (argv, err)
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        for needle in needles:
            assert needle.lower() in lines[0].lower(), (needle, lines[0])
        images = [p for p in tmp_path.rglob("*") if p.suffix in (".png", ".gif", ".pdf", ".svg", ".tmp")]
        assert not images, (argv, images)


@pytest.mark.slow
def test_bad_input_through_the_real_command_line(store, tmp_path):
    # The env check builds a MuJoCo env; its compiler warnings must not reach the one-line error.
    result = run_cli("visualize_hd.py", f"--policy_path={store / 'car' / 'best.pt'}", "--env=HalfCheetah-v5",
                     f"--save_path={tmp_path / 'out'}")
    assert_one_line_error(result, "observes 17", "takes 2")
    assert not (tmp_path / "out").exists()


def test_each_region_is_painted_in_its_own_patterns_colour(store):
    """The picture shows the partition: at an interior point of each of the largest regions the rendered pixel has the
    colour of that region's activation pattern (and no other region's colour is painted there)."""
    from utils.pictures.partition_drawing import pattern_colors, render_panels
    from utils.pictures.state_planes import build_frame, plane_through_raw_states, policy_patterns

    policy = load_checkpoint(store / "cheetah" / "best.pt")
    states = choose_three_states(sample_states("HalfCheetah-v5", policy, 2, 3), policy, 3)
    frame = build_frame(policy, plane_through_raw_states(states, policy, PLANE_SCALE), "HalfCheetah-v5",
                        color="region", clip_inputs=False)
    fig = render_panels([frame], panel_size=(5.4, 5.4), dpi=100)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].astype(int)
    part = frame.partition
    colors = np.round(pattern_colors(policy_patterns(policy, part).cpu().numpy())[:, :3] * 255).astype(int)
    ax = fig.axes[0]
    largest = np.argsort(-part.areas.cpu().numpy())[:15]
    matched = 0
    for i in largest:
        poly = part.polygon(int(i)).cpu().numpy()
        x, y = ax.transData.transform(poly.mean(axis=0))  # the vertex centroid lies inside a convex polygon
        block = pixels[int(round(pixels.shape[0] - y)) - 1:int(round(pixels.shape[0] - y)) + 2,
                       int(round(x)) - 1:int(round(x)) + 2].reshape(-1, 3)
        own = np.abs(block - colors[i]).max(axis=1) <= 2
        matched += int(own.all())
    # a few centroids may sit under a marker or label of s1..s3; a wrong colouring would match almost none
    assert matched >= 12, matched


# --------------------------------------------------------------------------------------------------------------
# Views, file names, contact sheets, overlays
# --------------------------------------------------------------------------------------------------------------
def test_car1d_default_view_frames_the_trajectory_and_the_target_with_a_margin(store, tmp_path, capfd):
    ckpt = store / "car" / "checkpoints" / "000001.pt"  # not best.pt: the view frames both trajectories
    job = plan_job(VisualizeSettings(policy_path=str(ckpt), save_path=tmp_path, quiet=True))
    points = np.concatenate([sample_episode("Car1DEnv-v1", load_checkpoint(path), stochastic=False, seed=0).states
                             for path in (ckpt, store / "car" / "best.pt")] + [np.array([[100.0, 0.0]])])
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.maximum(hi - lo, 0.02 * np.array([200.0, 40.0]))  # at least 2% of Car1D's fixed box
    center = (lo + hi) / 2
    (x0, x1), (y0, y1) = job.plane.bounds
    np.testing.assert_allclose([x0, y0], center - 0.65 * span)  # half the span plus 15% of it on each side
    np.testing.assert_allclose([x1, y1], center + 0.65 * span)
    result = run_job(job)
    assert result.paths == [tmp_path / "car_it000001_region.png"]  # the default view has no suffix
    expected = _state_space_partition(load_checkpoint(ckpt), (x0, x1), (y0, y1), clip=True).num_regions
    assert result.frames[0][0].num_regions == expected


def test_visited_view_floors_a_flat_span_and_stays_inside_the_observation_bounds():
    flat = np.array([[0.0, 1.0], [10.0, 1.0]])  # velocity never changes
    (x0, x1), (y0, y1) = visited_view(flat, reference=((-50.0, 150.0), (-20.0, 20.0)))
    assert (x0, x1) == pytest.approx((-1.5, 11.5)) and (y0, y1) == pytest.approx((1 - 0.52, 1 + 0.52))
    (x0, x1), (y0, y1) = visited_view(np.array([[-1.2, -0.07], [0.5, 0.07]]), low=(-1.2, -0.07), high=(0.6, 0.07))
    assert (x0, x1, y0, y1) == pytest.approx((-1.2, 0.6, -0.07, 0.07))  # a margin never leaves the state space
    with pytest.raises(UserError, match="--xlim"):
        visited_view(np.full((3, 2), np.nan))


def test_every_non_default_view_option_gets_its_own_file_name(store, tmp_path):
    best = str(store / "car" / "best.pt")
    options = [{}, {"unclipped": True}, {"xlim": (-5.0, 20.0)}, {"ylim": (-3.0, 3.0)},
               {"xlim": (-5.0, 20.0), "ylim": (-3.0, 3.0), "unclipped": True}, {"view": "env"}]
    names = []
    for extra in options:
        job = plan_job(VisualizeSettings(policy_path=best, save_path=tmp_path, dpi=30, quiet=True, **extra))
        (path,) = run_job(job).paths
        names.append(path.name)
    base = f"car_it{load_checkpoint(best).iteration:06d}_region"
    assert names == [f"{base}{suffix}.png" for suffix in ("", "_unclipped", "_x-5..20", "_y-3..3",
                                                          "_x-5..20_y-3..3_unclipped", "_envbox")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # none overwrote another
    assert view_suffix(VisualizeSettings(policy_path=best, scale=2.0)) == "_scale2"  # the high-D plane's zoom
    assert view_suffix(VisualizeSettings(policy_path=best, view="env", xlim=(0, 1), ylim=(0, 1))) == "_x0..1_y0..1"
    with pytest.raises(UserError, match="--view"):
        plan_job(VisualizeSettings(policy_path=str(store / "cheetah" / "best.pt"), save_path=tmp_path,
                                   view="env", num_episodes=2, quiet=True))


@pytest.mark.parametrize("n", range(1, 61))
def test_contact_sheet_grid_is_full_and_keeps_most_checkpoints(n):
    rows, cols = sheet_grid(n)
    assert rows * cols <= n and rows <= 6 and cols <= 5
    if n <= 5:
        assert (rows, cols) == (1, n)
    else:
        assert cols >= 3
        best = max(min(n // c, 6) * c for c in range(3, 6))
        assert rows * cols == best  # no grid without empty cells shows more
    picks = _evenly_spaced(list(range(n)), rows * cols)
    assert len(set(picks)) == rows * cols and picks[0] == 0 and picks[-1] == n - 1


def _drawn_figures(monkeypatch) -> list:
    """Record every figure run_job renders (the sheet is the last)."""
    import utils.pictures.partition_drawing as drawing

    figures, render = [], drawing.render_panels

    def recording(*args, **kwargs):
        figures.append(render(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(drawing, "render_panels", recording)
    return figures


def _legends(fig) -> list:
    """Every legend of the figure, its subfigures' and its axes'."""
    found = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for sub in fig.subfigs:
        found += _legends(sub)
    return found


@pytest.mark.slow
def test_contact_sheet_has_no_empty_cell_one_legend_and_shared_axis_labels(tmp_path, monkeypatch):
    store = tmp_path / "store"
    train_run(store, "car7", *CAR, "--total_timesteps=1200")  # 6 iterations: 7 checkpoints
    figures = _drawn_figures(monkeypatch)
    result = run_job(plan_job(VisualizeSettings(run_id="car7", checkpoints_dir=store, all_checkpoints=True,
                                                save_path=tmp_path / "out", dpi=30, quiet=True)))
    assert len(result.frames) == 7 and len(figures) == 7 + 1  # a GIF frame per checkpoint, then the sheet
    sheet = figures[-1]
    assert len(sheet.axes) == 6  # 2 rows x 3 columns, every cell a checkpoint (7 would leave 2 of 3 cells empty)
    titles = [ax.get_title() for ax in sheet.axes]
    assert titles[0].startswith("it 0 ") and titles[-1].startswith("it 6 ")  # first and last always shown
    assert all(ax.get_xlabel() == "" and ax.get_ylabel() == "" for ax in sheet.axes)
    (panels,) = [sub for sub in sheet.subfigs if sub.axes]
    assert (panels.get_supxlabel(), panels.get_supylabel()) == ("position", "velocity")  # once for the sheet
    (legend,) = _legends(sheet)
    texts = [t.get_text() for t in legend.get_texts()]
    assert len(texts) == len(set(texts)) and {"deterministic trajectory", "start", "target"} <= set(texts)


def test_trajectory_stands_out_from_region_edges(store):
    from matplotlib.colors import to_rgb
    from matplotlib.patheffects import withStroke

    from utils.pictures.partition_drawing import EDGE_COLOR, TRAJECTORY_COLOR, render_panels

    job = plan_job(VisualizeSettings(policy_path=str(store / "car" / "best.pt"), quiet=True))
    fig = render_panels([run_job_frames(job)], panel_size=(6.4, 4.8), dpi=50)
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "deterministic trajectory"]
    assert to_rgb(line.get_color()) == to_rgb(TRAJECTORY_COLOR) != to_rgb(EDGE_COLOR)
    edges = fig.axes[0].collections[0].get_linewidths()
    assert line.get_linewidth() >= 5 * max(edges)  # far wider than any region edge
    (halo,) = [e for e in line.get_path_effects() if isinstance(e, withStroke)]
    assert halo._gc["foreground"] == "white" and halo._gc["linewidth"] > line.get_linewidth()
    (legend,) = _legends(fig)  # below the axes, not over the partition
    renderer = fig.canvas.get_renderer()
    assert legend.get_window_extent(renderer).y1 <= fig.axes[0].get_window_extent(renderer).y0


def run_job_frames(job):
    """The one frame of a one-checkpoint job."""
    from utils.jobs.visualize import _frames

    (row,) = _frames(job, progress=False)
    return row[0]


def test_plane_axes_have_ticks_in_normalized_units(store):
    from utils.pictures.partition_drawing import render_panels
    from utils.pictures.state_planes import build_frame, plane_through_raw_states

    policy = load_checkpoint(store / "cheetah" / "best.pt")
    states = choose_three_states(sample_states("HalfCheetah-v5", policy, 1, 3), policy, 3)
    frame = build_frame(policy, plane_through_raw_states(states, policy, PLANE_SCALE), "HalfCheetah-v5",
                        clip_inputs=False)
    fig = render_panels([frame], panel_size=(5.4, 5.4), dpi=40)
    fig.canvas.draw()
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = frame.plane.bounds
    for ticks, labels, (lo, hi) in ((ax.get_xticks(), ax.get_xticklabels(), (x0, x1)),
                                    (ax.get_yticks(), ax.get_yticklabels(), (y0, y1))):
        inside = [t for t in ticks if lo <= t <= hi]
        assert len(inside) >= 3 and any(label.get_text() for label in labels)
    assert "normalized input units" in ax.get_xlabel() and "normalized input units" in ax.get_ylabel()
