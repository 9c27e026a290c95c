"""What visualize_hd.py does, as a library: validate the settings (checkpoints, runs, env, bounds, output directory)
before any work, build one plane for all checkpoints, partition and draw them, and write the images atomically.

Everything a user can get wrong is checked in ``plan_job``, which writes nothing but the (empty) output directory;
``run_job`` renders every image in memory first and writes files only at the end, each atomically, so a failure
never leaves a half-written image.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from envs.resolve import resolve_env_id
from models.checkpoint import LoadedPolicy, load_checkpoint
from models.normalization import ObsStatistics
from models.sb3 import load_policy_file, load_statistics_file
from utils.errors import UserError
from utils.flags import check_device
from utils.pictures.state_planes import (EnvInfo, PlaneFrame, StatePlane, build_frame, choose_three_states,
                                         default_state_space_bounds, deterministic_states, env_info,
                                         plane_through_raw_states, sample_states, state_space_plane, target_state,
                                         visited_view)
from utils.progress import progress_bar
from utils.runs.io import write_bytes_atomic
from utils.runs.store import RunPaths, check_writable_dir, find_run
from utils.settings import VisualizeSettings

SINGLE_PANEL = {"states": (5.4, 5.4), "state_space": (6.4, 4.8)}  # inches per panel, one image
SHEET_PANEL = {"states": (3.2, 3.6), "state_space": (3.8, 3.1)}  # inches per panel, contact sheets
SHEET_MAX_COLS = 5
SHEET_MIN_COLS = 3  # fewer columns would make a tall, narrow sheet
SHEET_MAX_ROWS = 6  # a contact sheet shows at most this many rows of evenly spaced checkpoints (the GIF has all)


@dataclass(frozen=True)
class Series:
    """The checkpoints of one column: a run (or a lone checkpoint), oldest first."""

    label: str
    policies: tuple[LoadedPolicy, ...]
    reference: LoadedPolicy  # the policy whose episodes give the states (the run's best)

    def with_statistics(self, stats: LoadedPolicy | ObsStatistics) -> "Series":
        """The drawn checkpoints with `stats`' normalization statistics instead of their own. The reference keeps
        its own: it fixes the plane, which --stats_path must not move (it changes what is drawn on it)."""
        return replace(self, policies=tuple(p.with_statistics(stats) for p in self.policies))


@dataclass(frozen=True)
class Job:
    """A validated visualization: the settings, the env, the columns and the one plane they are all drawn on."""

    settings: VisualizeSettings
    env_id: str
    series: tuple[Series, ...]
    plane: StatePlane
    animate: bool  # one frame per checkpoint index (GIF + contact sheet) instead of one image
    # Raw states of the deterministic episode drawn over a 2-D state space, by (series index, checkpoint index).
    trajectories: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class JobResult:
    """The images written, a summary line per drawn checkpoint, and the partitions ([frame index][series])."""

    paths: list[Path]
    summary: list[str]
    frames: list[list[PlaneFrame]] = field(repr=False, default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# Planning: every check before any work
# --------------------------------------------------------------------------------------------------------------
def _run_of_checkpoint(path: Path) -> RunPaths | None:
    """The run a checkpoint file belongs to (<run>/best.pt or <run>/checkpoints/NNNNNN.pt), if any."""
    for root in (path.parent, path.parent.parent):
        if (root / "run.json").is_file():
            return RunPaths(root)
    return None


def _run_series(run: RunPaths, all_checkpoints: bool) -> Series:
    listed = run.list_checkpoints()
    if not listed and not run.best.is_file():
        raise UserError(f"run {run.run_id} has no checkpoints in {run.checkpoints_dir}; train it first "
                        f"(python train.py) or pass another run")
    reference = load_checkpoint(run.best) if run.best.is_file() else load_checkpoint(listed[-1][1])
    if all_checkpoints:
        if not listed:
            raise UserError(f"run {run.run_id} has no checkpoints in {run.checkpoints_dir} (only best.pt); "
                            f"drop --all_checkpoints to draw best.pt")
        policies = tuple(load_checkpoint(p) for _, p in listed)
    else:
        policies = (reference,)
    return Series(run.run_id, policies, reference)


def _series(settings: VisualizeSettings) -> tuple[Series, ...]:
    """The columns to draw: the lone checkpoint, the run, or the compared runs (with --stats_path applied)."""
    if settings.policy_path is not None:
        policy = load_policy_file(settings.policy_path)  # a .pt of ours or an SB3 model zip
        run = _run_of_checkpoint(Path(settings.policy_path))
        reference = policy
        if run is not None and run.best.is_file() and run.best.resolve() != Path(settings.policy_path).resolve():
            reference = load_checkpoint(run.best)
        label = run.run_id if run is not None else Path(settings.policy_path).stem
        series = (Series(label, (policy,), reference),)
    else:
        names = settings.compare if settings.compare is not None else [settings.run]
        series = tuple(_run_series(find_run(settings.checkpoints_dir, name), settings.all_checkpoints)
                       for name in names)
    if settings.stats_path is None:
        return series
    stats = load_statistics_file(settings.stats_path)  # a .pt of ours or an SB3 VecNormalize pickle
    return tuple(s.with_statistics(stats) for s in series)


def plan_job(settings: VisualizeSettings, notify: Callable[[str], None] = lambda line: None) -> Job:
    """Validate the settings and build the plane; raises UserError (nothing written but the output dir) on bad input."""
    sources = sum(x is not None for x in (settings.policy_path, settings.run, settings.compare))
    if sources > 1:
        raise UserError("pass one of --policy_path, --run_id/--run_dir or --compare")
    if settings.all_checkpoints and not (settings.run or settings.compare):
        raise UserError("--all_checkpoints needs a run: pass --run_id=RUN (or --run_dir=DIR, or --compare RUN ...)")
    if sources == 0:
        raise UserError("nothing to draw; pass --policy_path=CHECKPOINT.pt, or --run_id=RUN [--all_checkpoints]")
    check_device(settings.device)
    series = _series(settings)

    first = series[0].policies[0]
    requested_env = settings.env or first.config.get("env_id")
    if not requested_env:
        raise UserError(f"{first.path} does not record its env; pass --env=ID")
    resolved = resolve_env_id(requested_env)
    if resolved.notice and settings.env:
        notify(resolved.notice)
    info = env_info(resolved.resolved)
    for s in series:
        for p in [*s.policies, s.reference]:
            if p.obs_dim != info.obs_dim:
                raise UserError(f"--env={requested_env} observes {info.obs_dim} numbers but {p.path} takes "
                                f"{p.obs_dim} (trained on {p.config.get('env_id')}); pass the env the checkpoint "
                                f"was trained on")
    trained_on = {p.config.get("env_id") for s in series for p in s.policies} - {None}  # SB3 zips name no env
    if trained_on - {resolved.resolved}:
        notify(f"notice: drawing on {resolved.resolved}, checkpoints were trained on "
               f"{', '.join(map(str, sorted(trained_on)))}")

    if info.obs_dim != 2 and (settings.xlim or settings.ylim):
        raise UserError(f"--xlim/--ylim bound a 2-D state space, {resolved.resolved} has {info.obs_dim}; drop them "
                        f"(high-D pictures use the plane through three states)")
    if info.obs_dim != 2 and settings.view != VisualizeSettings.view:
        raise UserError(f"--view chooses the box of a 2-D state space, {resolved.resolved} has {info.obs_dim}; drop "
                        f"it (--scale sizes the plane through three states)")
    check_writable_dir(settings.save_path, "--save_path")

    trajectories = {}
    if info.obs_dim == 2:
        trajectories = {(j, k): deterministic_states(resolved.resolved, p, settings.seed)
                        for j, s in enumerate(series) for k, p in enumerate(s.policies)}
        xlim, ylim = settings.xlim, settings.ylim
        if xlim is None or ylim is None:
            # Frame the run's fixed trajectory (its best checkpoint's) and, in one image, the drawn checkpoints'
            # own; an animation keeps to the fixed one, so one wild early checkpoint does not zoom every frame out.
            framed = [deterministic_states(resolved.resolved, s.reference, settings.seed) for s in series]
            if not settings.all_checkpoints:
                framed += list(trajectories.values())
            dx, dy = state_space_view(settings.view, resolved.resolved, info, framed)
            xlim, ylim = xlim or dx, ylim or dy
        plane = state_space_plane(xlim, ylim, info.state_names)
    else:
        reference = series[0].reference
        pool = sample_states(resolved.resolved, reference, settings.num_episodes, settings.seed)
        states = choose_three_states(pool, reference, settings.seed)
        plane = plane_through_raw_states(states, reference, settings.scale)
        plane = replace(plane, info={**plane.info, "seed": settings.seed, "num_episodes": settings.num_episodes})
    return Job(settings, resolved.resolved, series, plane, animate=settings.all_checkpoints,
               trajectories=trajectories)


def state_space_view(view: str, env_id: str, info: EnvInfo, trajectories: list[np.ndarray]
                     ) -> tuple[tuple[float, float], tuple[float, float]]:
    """(xlim, ylim) of a 2-D state space: the env's fixed box (view 'env'), or the box around the trajectories and
    the target (view 'visited'; utils.pictures.state_planes.visited_view)."""
    if view == "env":
        return default_state_space_bounds(env_id)
    target = target_state(env_id)
    points = np.concatenate([*trajectories, np.asarray([target] if target is not None else np.zeros((0, 2)))])
    try:
        reference = default_state_space_bounds(env_id)
    except UserError:  # an unbounded state space without a known box: the margin follows the coordinates
        reference = None
    return visited_view(points, reference=reference, low=info.obs_low, high=info.obs_high)


# --------------------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------------------
def _frames(job: Job, progress: bool) -> list[list[PlaneFrame]]:
    """Partitions for every frame index (rows) and series (columns); a shorter run holds its last checkpoint."""
    settings = job.settings
    n = max(len(s.policies) for s in job.series)
    rows: list[list[PlaneFrame]] = []
    cache: dict[tuple[int, int], PlaneFrame] = {}
    with progress_bar(n * len(job.series), "partitions", "frame", enabled=progress and n * len(job.series) > 1) as bar:
        for i in range(n):
            row = []
            for j, s in enumerate(job.series):
                k = min(i, len(s.policies) - 1)
                if (j, k) not in cache:
                    cache[(j, k)] = build_frame(s.policies[k], job.plane, job.env_id, color=settings.color,
                                                label=s.label, clip_inputs=not settings.unclipped,
                                                device=settings.device, trajectory=job.trajectories.get((j, k)))
                row.append(cache[(j, k)])
                bar.update(1)
            rows.append(row)
    return rows


def view_suffix(settings: VisualizeSettings) -> str:
    """The file-name suffix naming every non-default view option ('' for the default view), so a picture drawn
    with other bounds, another box or without the clip never overwrites the default one: e.g.
    `_x-5..20_y-3..3_unclipped`."""
    parts = []
    if settings.xlim:
        parts.append(f"x{settings.xlim[0]:g}..{settings.xlim[1]:g}")
    if settings.ylim:
        parts.append(f"y{settings.ylim[0]:g}..{settings.ylim[1]:g}")
    if settings.view != VisualizeSettings.view and not (settings.xlim and settings.ylim):
        parts.append(f"{settings.view}box")
    if settings.scale != VisualizeSettings.scale:
        parts.append(f"scale{settings.scale:g}")
    if settings.unclipped:
        parts.append("unclipped")
    return "".join(f"_{p}" for p in parts)


def _name(job: Job, kind: str, ext: str) -> Path:
    labels = "-".join(s.label for s in job.series)
    prefix = f"compare_{labels}" if len(job.series) > 1 else labels
    return job.settings.save_path / f"{prefix}_{kind}_{job.settings.color}{view_suffix(job.settings)}.{ext}"


def _evenly_spaced(items: list, count: int) -> list:
    """`count` items (all when there are no more), evenly spaced, always keeping the first and the last."""
    if len(items) <= count:
        return list(items)
    picks = np.floor(np.linspace(0, len(items) - 1, count) + 0.5).astype(int)  # distinct: the step is >= 1
    return [items[i] for i in picks]


def sheet_grid(n: int) -> tuple[int, int]:
    """(rows, columns) of a full contact sheet for n checkpoints: the grid with no empty cell that shows the most
    of them (ties: more columns), between SHEET_MIN_COLS and SHEET_MAX_COLS columns and at most SHEET_MAX_ROWS
    rows; one row when n <= SHEET_MAX_COLS. The checkpoints left out are evenly spaced; the GIF has all."""
    if n <= SHEET_MAX_COLS:
        return 1, n
    shown, cols = max((min(n // c, SHEET_MAX_ROWS) * c, c) for c in range(SHEET_MIN_COLS, SHEET_MAX_COLS + 1))
    return shown // cols, cols


def run_job(job: Job) -> JobResult:
    """Partition, draw and write: one image, or a GIF (frame per checkpoint) plus a contact sheet."""
    from utils.pictures.partition_drawing import figure_bytes, figure_image, gif_bytes, render_panels, shared_norm

    settings = job.settings
    progress = not settings.quiet
    rows = _frames(job, progress)
    all_frames = [f for row in rows for f in row]
    norm = shared_norm(all_frames)
    kind = job.plane.kind
    ncols = len(job.series)
    compare = ncols > 1
    suptitle = None
    if compare:
        suptitle = f"{job.env_id} · " + ("the state space" if kind == "state_space" else "plane through three states")
    outputs: dict[Path, bytes] = {}
    if not job.animate:
        fig = render_panels(rows[0], ncols=ncols, panel_size=SINGLE_PANEL[kind], dpi=settings.dpi, norm=norm,
                            compact=compare, suptitle=suptitle)
        p = rows[0][0].policy
        tag = "best" if compare else f"it{p.iteration:06d}"
        outputs[_name(job, tag, settings.format)] = figure_bytes(fig, settings.format)
    else:
        images = []
        with progress_bar(len(rows), "frames", "frame", enabled=progress) as bar:
            for row in rows:
                fig = render_panels(row, ncols=ncols, panel_size=SINGLE_PANEL[kind], dpi=settings.dpi, norm=norm,
                                    compact=compare, suptitle=suptitle)
                images.append(figure_image(fig))
                bar.update(1)
        outputs[_name(job, "evolution", "gif")] = gif_bytes(images, settings.frame_ms,
                                                            last_frame_ms=3 * settings.frame_ms)
        if compare:  # a row per checkpoint index, a column per run
            sheet_cols, sheet_rows = ncols, _evenly_spaced(rows, SHEET_MAX_ROWS)
        else:
            grid_rows, sheet_cols = sheet_grid(len(rows))
            sheet_rows = _evenly_spaced(rows, grid_rows * sheet_cols)
        sheet_frames = [f for row in sheet_rows for f in row]
        sheet = render_panels(sheet_frames, ncols=sheet_cols, panel_size=SHEET_PANEL[kind], dpi=settings.dpi,
                              norm=norm, compact=True, suptitle=suptitle or _sheet_title(job), show_label=compare)
        outputs[_name(job, "contact", settings.format)] = figure_bytes(sheet, settings.format)
    for path, data in outputs.items():
        try:
            write_bytes_atomic(path, data)
        except OSError as err:
            raise UserError(f"cannot write {path} ({err.strerror}); choose a writable --save_path") from None
    return JobResult(list(outputs), _summary(job, rows), rows)


def _sheet_title(job: Job) -> str:
    p = job.series[0].policies[0]
    widths = "c" + ",".join(str(w) for w in p.widths)
    where = "state space" if job.plane.kind == "state_space" else "plane through three states"
    return f"{job.env_id} · {widths} · {job.series[0].label} · {where}"


def _summary(job: Job, rows: list[list[PlaneFrame]]) -> list[str]:
    """One line per drawn checkpoint: run, iteration, timesteps and region count (the core's polygon count)."""
    lines = []
    if job.plane.kind == "states":
        s = job.plane.info
        lines.append(f"plane: three states from {s.get('num_episodes')} stochastic episodes of {s.get('reference')} "
                     f"(seed {s.get('seed')}), domain {s.get('scale')} x circumcircle")
    seen = set()
    for row in rows:
        for f in row:
            key = (f.label, str(f.policy.path))
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"{f.label} iteration {f.policy.iteration} timesteps {f.policy.timesteps} "
                         f"regions: {f.num_regions}")
    return lines
