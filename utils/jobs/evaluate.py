"""Evaluate the linear regions of every checkpoint of a run or a sweep: history.csv, summary.json, plots, wandb.

Flow for one run (DESIGN.md, "Metrics"): the fixed trajectory = one episode of best.pt's policy; for every
checkpoint its own (current) episode; both counted with the checkpoint's own normalization. Results go to
`<results_dir>/<run or sweep id>/<run_id>/`. Epochs already in history.csv are skipped unless `overwrite`.
"""
from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from models.checkpoint import LoadedPolicy, load_checkpoint
from utils.analysis.checkpoint_metrics import (BEST, CheckpointResult, CheckpointTask, UnreadableCheckpoint,
                                               check_matches_run, evaluate_checkpoint, expected_columns)
from utils.analysis.history import (HISTORY, SUMMARY, EarlierResults, best_metrics, earlier_results,
                                    fixed_trajectory_record, read_sweep_results, run_summary, training_eval_returns,
                                    write_history, write_sweep_csv)
from utils.analysis.random_data import RandomData, load_random_data
from utils.analysis.sources import ResolvedRun, default_wandb_api, resolve_runs
from utils.analysis.trajectories import cached_episode
from utils.errors import UserError
from utils.runs.io import write_json_atomic
from utils.runs.slurm import slurm_shard

logger = logging.getLogger("deep_rl_regions")
RUN_PLOTS = ("normalized_density", "trajectory_length", "region_count", "eval_return")


@dataclass
class EvalOptions:
    """What to evaluate and how; the defaults are evaluate.py's."""

    run_id: str | None = None
    sweep_id: str | None = None
    checkpoints_dir: Path = Path("checkpoints")
    results_dir: Path = Path("results")
    randomized_data_dir: Path = Path("randomized_data")
    add_stochastic: bool = False          # also the stochastic policy (mean + std noise)
    random_trajectories: bool = False     # metrics on random-action trajectories (needs randomized data)
    random_lines: bool = False            # metrics on random lines (needs randomized data)
    device: str = "cpu"
    workers: int = 1                      # checkpoints evaluated in parallel processes; 1 = in this process
    seed: int = 0                         # env reset seed and action-noise seed of every sampled episode
    overwrite: bool = False
    wandb_mode: str = "disabled"          # already resolved (utils.runs.tracking.choose_mode)
    wandb_log: bool = True
    entity: str | None = None
    project: str | None = "deep_rl_regions"
    plots: bool = True

    @property
    def result_id(self) -> str:
        return self.sweep_id or self.run_id or ""

    @property
    def policy_types(self) -> tuple[str, ...]:
        return ("deterministic", "stochastic") if self.add_stochastic else ("deterministic",)


def history_columns(opts: EvalOptions) -> list[str]:
    """history.csv columns of this evaluation, in order."""
    return expected_columns(opts.policy_types, random_trajectories=opts.random_trajectories,
                            random_lines=opts.random_lines)


def random_data_command(opts: EvalOptions) -> str:
    """The exact randomized_metric_helper.py command that creates the random data evaluate.py reads."""
    which = f"--sweep_id={opts.sweep_id}" if opts.sweep_id else f"--run_id={opts.run_id}"
    return (f"python randomized_metric_helper.py {which} --checkpoints_dir={opts.checkpoints_dir} "
            f"--save_dir={opts.randomized_data_dir}")


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


def run_setup(resolved: ResolvedRun, opts: EvalOptions) -> RunSetup:
    """The run's checkpoints, best policy and random data, checked; a UserError names what is missing and the fix."""
    run, info = resolved.run, resolved.info
    checkpoints = run.list_checkpoints()
    if not checkpoints:
        raise UserError(f"run {run.run_id} has no checkpoints in {run.checkpoints_dir}; train it with train.py "
                        f"(checkpoints are written every --save_every iterations) or pick another run")
    if not run.best.is_file():
        raise UserError(f"run {run.run_id} has no best.pt in {run.root}; it is written at the first evaluation "
                        f"during training: let the run finish or resume it with train.py --resume={run.run_id}")
    env_id, config = info.get("env_id"), info.get("config", {})
    policy_dims = tuple(config.get("policy_dims", ()))
    obs_dim = int(info.get("obs_dim") or config.get("obs_dim"))
    best = load_checkpoint(run.best)  # a corrupt best.pt is fatal: it defines the fixed trajectory
    check_matches_run(best, run.best, run.run_id, env_id, obs_dim, policy_dims)
    random_data = None
    if opts.random_lines or opts.random_trajectories:
        random_data = load_random_data(opts.randomized_data_dir, opts.result_id, env_id, obs_dim,
                                       lines=opts.random_lines, trajectories=opts.random_trajectories,
                                       fix_command=random_data_command(opts))
    return RunSetup(resolved, env_id, obs_dim, policy_dims, tuple(checkpoints), best,
                    Path(opts.results_dir) / opts.result_id / run.run_id, random_data,
                    fixed_trajectory_record(best, opts.seed, random_data))


def fixed_trajectories(setup: RunSetup, opts: EvalOptions) -> dict[str, np.ndarray]:
    """{policy type: raw states of best.pt's episode} (sampled once, then read from the run's trajectory cache)."""
    return {p: cached_episode(setup.resolved.run.trajectories_dir, BEST, setup.best, setup.env_id,
                              stochastic=(p == "stochastic"), seed=opts.seed).states for p in opts.policy_types}


def checkpoint_tasks(setup: RunSetup, opts: EvalOptions, earlier: EarlierResults) -> list[CheckpointTask]:
    """One task per checkpoint without valid earlier results, then best.pt's unless its metrics are in the summary."""
    columns = history_columns(opts)
    fixed = fixed_trajectories(setup, opts)

    def task(key: str, path: Path) -> CheckpointTask:
        return CheckpointTask(key, path, setup.run_id, setup.env_id, setup.obs_dim, setup.policy_dims,
                              setup.resolved.run.trajectories_dir, fixed, opts.policy_types, opts.seed, opts.device,
                              setup.random_data)

    tasks = [task(f"{it:06d}", path) for it, path in setup.checkpoints if not earlier.has_row(it, columns)]
    if not earlier.has_best(columns):
        tasks.append(task(BEST, setup.resolved.run.best))
    return tasks


def evaluate_checkpoints(tasks: list[CheckpointTask], workers: int,
                         on_done: Callable[[], None] = lambda: None) -> list[CheckpointResult]:
    """Every task's result, in task order: in this process for one worker, else in that many spawned processes."""
    if workers <= 1 or len(tasks) <= 1:
        results = []
        for task in tasks:
            results.append(evaluate_checkpoint(task))
            on_done()
        return results
    import multiprocessing
    # spawn, not fork: torch's thread pools do not survive fork reliably.
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        results = []
        for result in pool.map(evaluate_checkpoint, tasks):
            results.append(result)
            on_done()
        return results


def run_history(setup: RunSetup, earlier: EarlierResults, results: list[CheckpointResult]) -> RunHistory:
    """Earlier rows updated with the new results (eval_return from training's log), for checkpoints that exist."""
    eval_returns = training_eval_returns(setup.resolved.run)
    rows, best_row, unreadable = dict(earlier.rows), None, []
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


def run_plots(setup: RunSetup, history: RunHistory, summary: dict, opts: EvalOptions, *, redraw: bool) -> list[Path]:
    """The run's figures: drawn from the history, or those on disk when nothing changed since they were drawn."""
    if not opts.plots:
        return []
    on_disk = [setup.out_dir / f"{name}.png" for name in RUN_PLOTS]
    if not redraw and all(f.is_file() for f in on_disk):
        return on_disk
    from utils.pictures.metric_plots import plot_run
    return plot_run(list(history.rows), setup.out_dir, policy_types=opts.policy_types,
                    title=f"{setup.run_id} ({setup.env_id}, {summary['architecture']})")


def evaluate_run(resolved: ResolvedRun, opts: EvalOptions, *, progress: bool = False) -> RunReport:
    """Evaluate every checkpoint of one run; writes history.csv, summary.json and plots; returns what was written."""
    from tqdm import tqdm

    setup = run_setup(resolved, opts)
    columns = history_columns(opts)
    earlier = earlier_results(setup.out_dir, setup.fixed_trajectory, overwrite=opts.overwrite)
    tasks = checkpoint_tasks(setup, opts, earlier)
    with tqdm(total=len(tasks), desc=f"checkpoints of {setup.run_id}", unit="ckpt", leave=False,
              disable=None if progress else True) as bar:
        results = evaluate_checkpoints(tasks, opts.workers, lambda: bar.update(1))
    history = run_history(setup, earlier, results)
    history_path, summary_path = setup.out_dir / HISTORY, setup.out_dir / SUMMARY
    write_history(history_path, list(history.rows), columns)
    summary = run_summary(resolved, setup.best, num_checkpoints=len(setup.checkpoints),
                          num_evaluated=len(history.rows), bad_checkpoints=history.unreadable,
                          fixed_trajectory=setup.fixed_trajectory, evaluation_seed=opts.seed, columns=columns,
                          best_values=best_metrics(history.best_row, earlier.summary, columns))
    write_json_atomic(summary_path, summary)
    files = [history_path, summary_path, *run_plots(setup, history, summary, opts, redraw=bool(tasks))]
    evaluated = sum(1 for t in tasks if t.key != BEST)
    wandb_url = None
    if opts.wandb_log and opts.wandb_mode != "disabled":
        wandb_url = log_run_to_wandb(opts, resolved, setup.out_dir, history.rows, summary)
    return RunReport(setup.run_id, setup.out_dir, tuple(files), evaluated=evaluated,
                     skipped=len(setup.checkpoints) - evaluated, bad_checkpoints=history.unreadable,
                     wandb_url=wandb_url)


def log_run_to_wandb(opts: EvalOptions, resolved: ResolvedRun, out_dir: Path, rows: Sequence[dict],
                     summary: dict) -> str | None:
    """One wandb run of job type `evaluate`: every history row at its iteration, the summary; returns its URL."""
    from utils.runs.store import new_run_id
    from utils.runs.tracking import start_tracking

    config = {**resolved.info.get("config", {}), "evaluated_run_id": resolved.run_id,
              "sweep_id": resolved.info.get("sweep_id"), "evaluation": {
                  "seed": opts.seed, "add_stochastic": opts.add_stochastic,
                  "random_trajectories": opts.random_trajectories, "random_lines": opts.random_lines}}
    tracker = start_tracking(opts.wandb_mode, run_id=f"{resolved.run_id}-eval-{new_run_id()}", run_dir=out_dir,
                             config=config, project=opts.project, entity=opts.entity,
                             name=f"evaluate-{resolved.run_id}", job_type="evaluate",
                             group=resolved.info.get("sweep_id"))
    for note in tracker.notices:
        logger.warning(note)
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


def evaluate(opts: EvalOptions, *, wandb_online: bool = False, api_factory: Callable[[], Any] = default_wandb_api,
             progress: bool = False, environ: dict | None = None) -> EvaluationReport:
    """Evaluate the run or the sweep (this SLURM array task's share of it) and, for a sweep, aggregate all results."""
    from tqdm import tqdm

    runs = resolve_runs(opts.checkpoints_dir, run_id=opts.run_id, sweep_id=opts.sweep_id, entity=opts.entity,
                        project=opts.project, wandb_online=wandb_online, api_factory=api_factory,
                        shard=lambda items: slurm_shard(items, environ))
    reports = tuple(evaluate_run(resolved, opts, progress=progress)
                    for resolved in tqdm(runs, desc="runs", unit="run",
                                         disable=None if progress and len(runs) > 1 else True))
    sweep_files = ()
    if opts.sweep_id:
        sweep_files = tuple(write_sweep_results(Path(opts.results_dir) / opts.sweep_id, plots=opts.plots))
    return EvaluationReport(reports, sweep_files)


def write_sweep_results(sweep_dir: Path, *, plots: bool = True) -> list[Path]:
    """sweep.csv (one row per evaluated run, from every summary.json present) and the per-architecture plots."""
    summaries, histories = read_sweep_results(sweep_dir)
    if not summaries:
        return []
    files = [write_sweep_csv(sweep_dir, summaries)]
    if plots:
        from utils.pictures.metric_plots import plot_sweep
        files += plot_sweep(summaries, histories, Path(sweep_dir))
    return files
