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
from tqdm import tqdm

from envs.resolve import resolve_env_id
from models.checkpoint import LoadedPolicy, load_checkpoint
from utils.errors import UserError
from utils.flags import check_device
from utils.runs.io import write_bytes_atomic
from utils.runs.store import RunPaths, check_writable_dir, find_run
from utils.pictures.state_planes import (PlaneFrame, StatePlane, build_frame, choose_three_states,
                                         default_state_space_bounds, env_info, plane_through_raw_states, sample_states,
                                         state_space_plane)
from utils.settings import VisualizeSettings

SINGLE_PANEL = {"states": (5.4, 5.4), "state_space": (6.4, 4.8)}  # inches per panel, one image
SHEET_PANEL = {"states": (3.2, 3.4), "state_space": (3.8, 3.1)}  # inches per panel, contact sheets
SHEET_MAX_COLS = 5
SHEET_MAX_ROWS = 6  # a contact sheet shows at most this many rows of evenly spaced checkpoints (the GIF has all)


@dataclass(frozen=True)
class Series:
    """The checkpoints of one column: a run (or a lone checkpoint), oldest first."""

    label: str
    policies: tuple[LoadedPolicy, ...]
    reference: LoadedPolicy  # the policy whose episodes give the states (the run's best)

    def with_statistics(self, stats: LoadedPolicy) -> "Series":
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
        policy = load_checkpoint(settings.policy_path)
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
    stats = load_checkpoint(settings.stats_path)
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
    trained_on = {p.config.get("env_id") for s in series for p in s.policies}
    if trained_on - {resolved.resolved}:
        notify(f"notice: drawing on {resolved.resolved}, checkpoints were trained on "
               f"{', '.join(map(str, sorted(trained_on)))}")

    if info.obs_dim != 2 and (settings.xlim or settings.ylim):
        raise UserError(f"--xlim/--ylim bound a 2-D state space, {resolved.resolved} has {info.obs_dim}; drop them "
                        f"(high-D pictures use the plane through three states)")
    check_writable_dir(settings.save_path, "--save_path")

    if info.obs_dim == 2:
        xlim, ylim = settings.xlim, settings.ylim
        if xlim is None or ylim is None:
            dx, dy = default_state_space_bounds(resolved.resolved)
            xlim, ylim = xlim or dx, ylim or dy
        plane = state_space_plane(xlim, ylim, info.state_names)
    else:
        reference = series[0].reference
        pool = sample_states(resolved.resolved, reference, settings.num_episodes, settings.seed)
        states = choose_three_states(pool, reference, settings.seed)
        plane = plane_through_raw_states(states, reference, settings.scale)
        plane = replace(plane, info={**plane.info, "seed": settings.seed, "num_episodes": settings.num_episodes})
    return Job(settings, resolved.resolved, series, plane, animate=settings.all_checkpoints)


# --------------------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------------------
def _frames(job: Job, progress: bool) -> list[list[PlaneFrame]]:
    """Partitions for every frame index (rows) and series (columns); a shorter run holds its last checkpoint."""
    settings = job.settings
    n = max(len(s.policies) for s in job.series)
    rows: list[list[PlaneFrame]] = []
    cache: dict[tuple[int, int], PlaneFrame] = {}
    traj_seed = settings.seed if job.plane.kind == "state_space" else None
    with tqdm(total=n * len(job.series), desc="partitions", unit="frame", disable=not progress, leave=False) as bar:
        for i in range(n):
            row = []
            for j, s in enumerate(job.series):
                k = min(i, len(s.policies) - 1)
                if (j, k) not in cache:
                    cache[(j, k)] = build_frame(s.policies[k], job.plane, job.env_id, color=settings.color,
                                                label=s.label, clip_inputs=not settings.unclipped,
                                                device=settings.device, trajectory_seed=traj_seed)
                row.append(cache[(j, k)])
                bar.update(1)
            rows.append(row)
    return rows


def _name(job: Job, kind: str, ext: str) -> Path:
    labels = "-".join(s.label for s in job.series)
    prefix = f"compare_{labels}" if len(job.series) > 1 else labels
    return job.settings.save_path / f"{prefix}_{kind}_{job.settings.color}.{ext}"


def _evenly_spaced(items: list, limit: int) -> list:
    """At most `limit` items, evenly spaced, always keeping the first and the last."""
    if len(items) <= limit:
        return list(items)
    picks = np.unique(np.round(np.linspace(0, len(items) - 1, limit)).astype(int))
    return [items[i] for i in picks]


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
        for row in tqdm(rows, desc="frames", unit="frame", disable=not progress, leave=False):
            fig = render_panels(row, ncols=ncols, panel_size=SINGLE_PANEL[kind], dpi=settings.dpi, norm=norm,
                                compact=compare, suptitle=suptitle)
            images.append(figure_image(fig))
        outputs[_name(job, "evolution", "gif")] = gif_bytes(images, settings.frame_ms,
                                                            last_frame_ms=3 * settings.frame_ms)
        sheet_cols = ncols if compare else min(len(all_frames), SHEET_MAX_COLS)
        sheet_rows = _evenly_spaced(rows, SHEET_MAX_ROWS if compare else SHEET_MAX_ROWS * SHEET_MAX_COLS)
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
