"""Evaluate the linear regions of every checkpoint of a run or a sweep: history.csv, summary.json, plots, wandb.

This module plans and orchestrates; the pieces live below it: finding the runs (utils.analysis.sources), one
checkpoint's metrics (utils.analysis.checkpoint_metrics), the result files (utils.analysis.history), the figures
(utils.pictures.metric_plots), wandb (utils.runs.tracking) and SLURM array shares (utils.runs.slurm).

Flow for one run (docs/design.md, "Metrics"): the fixed trajectory = one episode of best.pt's policy; for every
checkpoint its own (current) episode; both counted with the checkpoint's own normalization. Results go to
`<results_dir>/<run or sweep id>/<run_id>/`. Epochs already in history.csv are skipped unless --overwrite.

Two phases (docs/design.md, "Evaluation sampling"): first every episode the evaluation needs that is not in the
trajectory cache is sampled, a run's checkpoints together in lockstep (with --workers, runs, or parts of a run,
in parallel processes); then the checkpoints are counted (with --workers, in parallel) on the cached states.
"""
from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from models.checkpoint import LoadedPolicy, load_checkpoint
from utils.analysis.checkpoint_metrics import (BEST, CheckpointResult, CheckpointTask, EpisodeBatch,
                                               UnreadableCheckpoint, check_matches_run, evaluate_checkpoint,
                                               expected_columns, sample_episode_batch)
from utils.analysis.history import (HISTORY, SUMMARY, EarlierResults, best_metrics, earlier_results, final_values,
                                    fixed_trajectory_record, read_sweep_results, run_summary, training_eval_returns,
                                    write_history, write_sweep_csv)
from utils.analysis.random_data import RandomData, load_random_data, random_data_command
from utils.analysis.sources import ResolvedRun, default_wandb_api, resolve_runs
from utils.analysis.trajectories import cached_episode
from utils.errors import UserError
from utils.flags import NAME_RULE, available_cpus, check_device, is_name
from utils.progress import progress_bar
from utils.runs.io import json_text, write_text_if_changed
from utils.runs.slurm import slurm_shard
from utils.runs.store import check_creatable_dir, new_run_id
from utils.runs.tracking import choose_mode, start_tracking
from utils.settings import EvaluateSettings

logger = logging.getLogger("deep_rl_regions")


# ----------------------------------------------------------------------------------------------------------------
# The plan: the settings plus what is decided when the command runs
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationPlan:
    """evaluate.py's settings plus what is resolved once at run time (utils.settings holds the flags' defaults)."""

    settings: EvaluateSettings
    wandb_mode: str   # the wandb mode in use (utils.runs.tracking.choose_mode): it also decides wandb lookups
    wandb_log: bool   # log the evaluation as a wandb run (never when wandb_mode is "disabled")
    workers: int      # processes evaluating checkpoints; 1 = in this process; CPUs when --multi_processing
    notices: tuple[str, ...] = ()  # said once the runs are found, so a mistake in the ids is the only line shown

    @property
    def wandb_online(self) -> bool:
        """True when runs missing from the local run store may be looked up in wandb."""
        return self.wandb_mode == "online"

    @property
    def plots(self) -> bool:
        return not self.settings.no_plots


def plan_evaluation(settings: EvaluateSettings, *, cpus: Callable[[], int] = available_cpus) -> EvaluationPlan:
    """The plan for these settings, after the checks that need the machine or the disk (device, results dir);
    writes nothing."""
    check_device(settings.device)
    check_creatable_dir(settings.results_dir, "--results_dir")  # created only when there is something to write
    mode, notice = choose_mode(settings.wandb_mode)
    wandb_log = not settings.no_wandb_log and mode != "disabled"
    wanted = wandb_log or settings.entity  # the mode is only worth a notice when wandb is wanted for something
    return EvaluationPlan(settings, wandb_mode=mode, wandb_log=wandb_log,
                          workers=cpus() if settings.multi_processing else settings.workers,
                          notices=(notice,) if notice and wanted else ())


def history_columns(settings: EvaluateSettings) -> list[str]:
    """history.csv columns of this evaluation, in order."""
    return expected_columns(settings.policy_types, random_trajectories=settings.random_trajectories,
                            random_lines=settings.random_lines)


# ----------------------------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSetup:
    """What stays fixed while one run is evaluated, all checked before anything is written."""

    resolved: ResolvedRun
    env_id: str
    obs_dim: int
    policy_dims: tuple[int, ...]
    checkpoints: tuple[tuple[int, Path], ...]  # (iteration, path), oldest first
    best: LoadedPolicy                          # defines the fixed trajectory
    out_dir: Path                               # <results_dir>/<run or sweep id>/<run_id>/
    random_data: RandomData | None
    fixed_trajectory: dict                      # what earlier results depend on (summary.json)
    earlier: EarlierResults                     # what an earlier evaluation left in out_dir (none: --overwrite)
    eval_returns: dict[int, float]              # training's mean deterministic eval return per iteration

    @property
    def run_id(self) -> str:
        return self.resolved.run_id


@dataclass(frozen=True)
class RunHistory:
    """The evaluated checkpoints of a run: history.csv's rows, best.pt's row, and the unreadable files."""

    rows: tuple[dict, ...]               # one per existing checkpoint that has results, by iteration
    best_row: dict | None                # None when best.pt's earlier results are reused
    unreadable: tuple[UnreadableCheckpoint, ...]


@dataclass(frozen=True)
class RunReport:
    """What evaluating one run did: where the results are, how many checkpoints were (re)evaluated or skipped."""

    run_id: str
    out_dir: Path
    files: tuple[Path, ...]
    evaluated: int
    skipped: int
    bad_checkpoints: tuple[UnreadableCheckpoint, ...] = ()
    wandb_url: str | None = None


def run_setup(resolved: ResolvedRun, settings: EvaluateSettings) -> RunSetup:
    """The run's checkpoints, best policy, random data, training log and earlier results, all read and checked
    before anything is written; a UserError names what is missing or damaged and the fix."""
    run, info = resolved.run, resolved.info
    checkpoints = run.list_checkpoints()
    if not checkpoints:
        raise UserError(f"run {run.run_id} has no checkpoints in {run.checkpoints_dir}; train it with train.py "
                        f"(checkpoints are written every --save_every iterations) or pick another run")
    if not run.best.is_file():
        raise UserError(f"run {run.run_id} has no best.pt in {run.root}; it is written at the first evaluation "
                        f"during training: let the run finish or resume it with train.py --resume={run.run_id}")
    env_id, policy_dims, obs_dim = info["env_id"], tuple(info["config"]["policy_dims"]), info["obs_dim"]
    best = load_checkpoint(run.best)  # a corrupt best.pt is fatal: it defines the fixed trajectory
    check_matches_run(best, run.best, run.run_id, env_id, obs_dim, policy_dims)
    group = result_group(settings, info.get("sweep_id"))
    random_data = requested_random_data(settings, group, env_id, obs_dim)
    out_dir = settings.results_dir / group / run.run_id
    fixed_trajectory = fixed_trajectory_record(best, settings.seed, random_data)
    return RunSetup(resolved, env_id, obs_dim, policy_dims, tuple(checkpoints), best, out_dir, random_data,
                    fixed_trajectory, earlier_results(out_dir, fixed_trajectory, overwrite=settings.overwrite),
                    training_eval_returns(run))


def result_group(settings: EvaluateSettings, run_sweep_id: str | None) -> str:
    """The folder a run's results and random data live under: its sweep's, also when it is evaluated alone with
    --run_id (so both ways of evaluating it agree), else its own id."""
    group = settings.sweep_id or run_sweep_id or settings.result_id
    if not is_name(group):  # it names a folder: a damaged or hand-edited run.json must not point elsewhere
        raise UserError(f"the run's sweep id {group!r} in its run.json is not a valid id ({NAME_RULE}); "
                        f"the run directory is damaged: fix sweep_id in run.json")
    return group


def requested_random_data(settings: EvaluateSettings, group: str, env_id: str, obs_dim: int) -> RandomData | None:
    """The random lines and/or trajectories asked for (None when neither is), from the run's result group (its
    sweep's data when it belongs to one); missing files name the command that makes them."""
    if not (settings.random_lines or settings.random_trajectories):
        return None
    ids = {"run_id": group, "sweep_id": None} if group == settings.run_id else {"run_id": None, "sweep_id": group}
    command = random_data_command(**ids, checkpoints_dir=settings.checkpoints_dir,
                                  save_dir=settings.randomized_data_dir)
    return load_random_data(settings.randomized_data_dir, group, env_id, obs_dim,
                            lines=settings.random_lines, trajectories=settings.random_trajectories,
                            fix_command=command)


def fixed_trajectories(setup: RunSetup, settings: EvaluateSettings) -> dict[str, np.ndarray]:
    """{policy type: raw states of best.pt's episode} (sampled once, then read from the run's trajectory cache)."""
    return {p: cached_episode(setup.resolved.run.trajectories_dir, BEST, setup.best, setup.env_id,
                              stochastic=(p == "stochastic"), seed=settings.seed).states
            for p in settings.policy_types}


def pending_checkpoints(setup: RunSetup, settings: EvaluateSettings) -> list[tuple[str, Path]]:
    """(key, path) of every checkpoint without valid earlier results, then best.pt's unless its metrics are in
    the summary."""
    columns, earlier = history_columns(settings), setup.earlier
    pending = [(f"{it:06d}", path) for it, path in setup.checkpoints if not earlier.has_row(it, columns)]
    if not earlier.has_best(columns):
        pending.append((BEST, setup.resolved.run.best))
    return pending


def checkpoint_tasks(setup: RunSetup, settings: EvaluateSettings) -> list[CheckpointTask]:
    """One task per pending checkpoint (pending_checkpoints)."""
    fixed = fixed_trajectories(setup, settings)
    return [CheckpointTask(key, path, setup.run_id, setup.env_id, setup.obs_dim, setup.policy_dims,
                           setup.resolved.run.trajectories_dir, fixed, settings.policy_types, settings.seed,
                           settings.device, setup.random_data)
            for key, path in pending_checkpoints(setup, settings)]


def episode_batches(setup: RunSetup, settings: EvaluateSettings, parts: int = 1) -> list[EpisodeBatch]:
    """The episodes a run's evaluation needs (best.pt's, which is also the fixed trajectory, and every pending
    checkpoint's, of every policy type) in `parts` batches of about equal size (fewer if there are fewer)."""
    keys = [(BEST, setup.resolved.run.best)] + [kp for kp in pending_checkpoints(setup, settings) if kp[0] != BEST]
    size = -(-len(keys) // max(1, min(parts, len(keys))))
    return [EpisodeBatch(setup.run_id, setup.env_id, setup.obs_dim, setup.policy_dims,
                         setup.resolved.run.trajectories_dir, tuple(keys[start:start + size]), settings.policy_types,
                         settings.seed)
            for start in range(0, len(keys), size)]


def sampling_batches(setups: Sequence[RunSetup], settings: EvaluateSettings, workers: int) -> list[EpisodeBatch]:
    """The episodes the runs' evaluation needs, in batches: a run per batch, a run in several when there are fewer
    runs than workers (so every worker has one)."""
    parts = 1 if workers <= 1 else -(-workers // max(1, len(setups)))
    return [batch for setup in setups for batch in episode_batches(setup, settings, parts)]


def sample_batches(batches: list[EpisodeBatch], workers: int, on_done: Callable[[], None] = lambda: None) -> None:
    """Every batch's missing episodes into its run's trajectory cache: in this process for one worker, else in
    that many spawned processes."""
    for _ in _map(sample_episode_batch, batches, workers):
        on_done()


def evaluate_checkpoints(tasks: list[CheckpointTask], workers: int,
                         on_done: Callable[[], None] = lambda: None) -> list[CheckpointResult]:
    """Every task's result, in task order: in this process for one worker, else in that many spawned processes."""
    return _collect(_map(evaluate_checkpoint, tasks, workers), on_done)


def _map(function: Callable, items: list, workers: int) -> Iterable:
    """function over items, lazily, in order: in this process for one worker, else in spawned processes."""
    if workers <= 1 or len(items) <= 1:
        yield from map(function, items)
        return
    import multiprocessing
    # spawn, not fork: torch's thread pools do not survive fork reliably.
    with ProcessPoolExecutor(max_workers=min(workers, len(items)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(function, items)


def _collect(results: Iterable[CheckpointResult], on_done: Callable[[], None]) -> list[CheckpointResult]:
    collected = []
    for result in results:  # lazily: on_done moves the progress bar as each result arrives
        collected.append(result)
        on_done()
    return collected


def run_history(setup: RunSetup, results: list[CheckpointResult]) -> RunHistory:
    """Earlier rows updated with the new results (eval_return from training's log), for checkpoints that exist."""
    eval_returns = setup.eval_returns
    rows, best_row, unreadable = dict(setup.earlier.rows), None, []
    for result in results:
        if isinstance(result, UnreadableCheckpoint):
            unreadable.append(result)
            continue
        row = {**result.row, "eval_return": eval_returns.get(result.iteration)}
        if result.key == BEST:
            best_row = row
        else:
            rows[result.iteration] = row
    existing = {it for it, _ in setup.checkpoints}
    return RunHistory(tuple(rows[it] for it in sorted(rows) if it in existing), best_row, tuple(unreadable))


def run_plots(setup: RunSetup, history: RunHistory, summary: dict, settings: EvaluateSettings, *,
              redraw: bool) -> list[Path]:
    """The run's figures in --format: drawn from the history, or those on disk when nothing changed since they
    were drawn (same checkpoints, same columns, same format)."""
    if settings.no_plots:
        return []
    from utils.pictures.metric_plots import plot_run, run_figure_names

    columns = history_columns(settings)
    on_disk = [setup.out_dir / f"{name}.{settings.format}" for name in run_figure_names(columns)]
    if not redraw and all(f.is_file() for f in on_disk):
        return on_disk
    return plot_run(list(history.rows), setup.out_dir, columns=columns, fmt=settings.format,
                    title=f"{setup.env_id} · {summary['architecture']}")


def evaluate_run(setup: RunSetup, plan: EvaluationPlan, *, progress: bool = False, sample: bool = True,
                 notify: Callable[[str], None] = logger.warning) -> RunReport:
    """Evaluate every checkpoint of one set-up run; writes history.csv, summary.json and plots; returns what was
    written. `sample`: first sample the run's missing episodes together in this process (False when
    evaluate's sample_batches has done it)."""
    settings, resolved = plan.settings, setup.resolved
    columns = history_columns(settings)
    if sample:
        for batch in episode_batches(setup, settings):
            sample_episode_batch(batch)
    tasks = checkpoint_tasks(setup, settings)
    with progress_bar(len(tasks), f"checkpoints of {setup.run_id}", "ckpt", enabled=progress and bool(tasks)) as bar:
        results = evaluate_checkpoints(tasks, plan.workers, lambda: bar.update(1))
    history = run_history(setup, results)
    history_path, summary_path = setup.out_dir / HISTORY, setup.out_dir / SUMMARY
    changed = write_history(history_path, list(history.rows), columns)
    summary = run_summary(resolved, setup.best, num_checkpoints=len(setup.checkpoints),
                          num_evaluated=len(history.rows), bad_checkpoints=history.unreadable,
                          fixed_trajectory=setup.fixed_trajectory, evaluation_seed=settings.seed, columns=columns,
                          best_values=best_metrics(history.best_row, setup.earlier.summary, columns),
                          final=final_values(history.rows))
    changed |= write_text_if_changed(summary_path, json_text(summary))
    files = [history_path, summary_path, *run_plots(setup, history, summary, settings, redraw=changed)]
    evaluated = sum(1 for t in tasks if t.key != BEST)
    wandb_url = None
    # an unchanged evaluation was logged when it was made: a re-run adds no second wandb run of the same numbers
    if plan.wandb_log and plan.wandb_mode != "disabled" and changed:
        wandb_url = log_run_to_wandb(plan, resolved, setup.out_dir, history.rows, summary, notify=notify)
    return RunReport(setup.run_id, setup.out_dir, tuple(files), evaluated=evaluated,
                     skipped=len(setup.checkpoints) - evaluated, bad_checkpoints=history.unreadable,
                     wandb_url=wandb_url)


def log_run_to_wandb(plan: EvaluationPlan, resolved: ResolvedRun, out_dir: Path, rows: Sequence[dict],
                     summary: dict, *, notify: Callable[[str], None] = logger.warning) -> str | None:
    """One wandb run of job type `evaluate`: every history row at its iteration, the summary; returns its URL."""
    settings = plan.settings
    config = {**resolved.info.get("config", {}), "evaluated_run_id": resolved.run_id,
              "sweep_id": resolved.info.get("sweep_id"), "evaluation": {
                  "seed": settings.seed, "add_stochastic": settings.add_stochastic,
                  "random_trajectories": settings.random_trajectories, "random_lines": settings.random_lines}}
    tracker = start_tracking(plan.wandb_mode, run_id=f"{resolved.run_id}-eval-{new_run_id()}", run_dir=out_dir,
                             config=config, project=settings.project_name, entity=settings.entity,
                             name=f"evaluate-{resolved.run_id}", job_type="evaluate",
                             group=resolved.info.get("sweep_id"))
    for note in tracker.notices:
        notify(note)
    for row in rows:
        tracker.log({k: v for k, v in row.items() if isinstance(v, (int, float)) and v is not None},
                    step=int(row["iteration"]))
    tracker.set_summary({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
    url = tracker.url
    tracker.finish()
    return url


# ----------------------------------------------------------------------------------------------------------------
# A run or a sweep
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationReport:
    """Every run evaluated by this process and, for a sweep, the files aggregating all of the sweep's results."""

    runs: tuple[RunReport, ...]
    sweep_files: tuple[Path, ...] = ()

    @property
    def bad_checkpoints(self) -> list[UnreadableCheckpoint]:
        return [b for r in self.runs for b in r.bad_checkpoints]

    def raise_for_unreadable(self) -> None:
        """A UserError naming the first unreadable checkpoint, if any (every other checkpoint was evaluated)."""
        if not self.bad_checkpoints:
            return
        bad = self.bad_checkpoints[0]
        more = f" (and {len(self.bad_checkpoints) - 1} more)" if len(self.bad_checkpoints) > 1 else ""
        raise UserError(f"checkpoint {bad.file}{more} is unreadable and was skipped "
                        f"({bad.error.split(';')[0][:160]}); the other epochs were evaluated and it is listed "
                        f"under bad_checkpoints in summary.json: restore or delete it, then re-run")


def evaluate(plan: EvaluationPlan, *, api_factory: Callable[[], Any] = default_wandb_api, progress: bool = False,
             environ: dict | None = None, notify: Callable[[str], None] = logger.warning) -> EvaluationReport:
    """Evaluate the run or the sweep (this SLURM array task's share of it) and, for a sweep, aggregate all results."""
    settings = plan.settings
    runs = resolve_runs(settings.checkpoints_dir, run_id=settings.run_id, sweep_id=settings.sweep_id,
                        entity=settings.entity, project=settings.project_name, wandb_online=plan.wandb_online,
                        api_factory=api_factory, shard=lambda items: slurm_shard(items, environ),
                        env=settings.env, notify=notify)
    # Every file the evaluation reads is read before the first one is written, so damage changes nothing on disk.
    setups = [run_setup(resolved, settings) for resolved in runs]
    if settings.sweep_id:  # the other runs' results, aggregated at the end (this process rewrites its own)
        read_sweep_results(settings.results_dir / settings.sweep_id,
                           skip=[s.run_id for s in setups if settings.overwrite])
    for line in plan.notices:
        notify(line)
    reports = []
    batches = sampling_batches(setups, settings, plan.workers)
    with progress_bar(len(batches), "sampling episodes", "batch", enabled=progress and len(batches) > 1) as bar:
        sample_batches(batches, plan.workers, lambda: bar.update(1))
    with progress_bar(len(setups), "runs", "run", enabled=progress and len(setups) > 1) as bar:
        for setup in setups:
            reports.append(evaluate_run(setup, plan, progress=progress, sample=False, notify=notify))
            bar.update(1)
    sweep_files = ()
    if settings.sweep_id:
        sweep_files = tuple(write_sweep_results(settings.results_dir / settings.sweep_id, plots=plan.plots,
                                                fmt=settings.format))
    return EvaluationReport(tuple(reports), sweep_files)


def write_sweep_results(sweep_dir: Path, *, plots: bool = True, fmt: str = "png") -> list[Path]:
    """sweep.csv (one row per evaluated run, from every summary.json present) and the per-architecture figures in
    `fmt`, drawn every time (another process, a SLURM array task, may have added runs) but written only where
    their bytes changed, like sweep.csv."""
    summaries, histories = read_sweep_results(sweep_dir)
    if not summaries:
        return []
    sweep_csv, _ = write_sweep_csv(sweep_dir, summaries)
    files = [sweep_csv]
    if plots:
        from utils.pictures.metric_plots import plot_sweep
        files += plot_sweep(summaries, histories, Path(sweep_dir), fmt=fmt)
    return files
