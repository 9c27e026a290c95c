"""Evaluate the linear regions of every checkpoint of a run or a sweep: history.csv, summary.json, plots, wandb.

Flow for one run (DESIGN.md, "Metrics"): the fixed trajectory = one episode of best.pt's policy; for every
checkpoint its own (current) episode; both counted with the checkpoint's own normalization. Results go to
`<results_dir>/<run or sweep id>/<run_id>/`. Epochs already in history.csv are skipped unless `overwrite`.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from models.checkpoint import LoadedPolicy, load_checkpoint
from utils.errors import UserError
from utils.runs.io import read_jsonl, write_json_atomic, write_text_atomic
from utils.analysis.metrics import (TRAJECTORY_TYPES, architecture_summary, random_line_metric_names, random_line_metrics,
                           random_trajectory_metric_names, random_trajectory_metrics, trajectory_metric_names,
                           trajectory_metrics)
from utils.analysis.random_data import RandomData, load_random_data
from utils.analysis.sources import ResolvedRun, default_wandb_api, resolve_runs
from utils.runs.slurm import slurm_shard
from utils.runs.store import RunPaths
from utils.analysis.trajectories import cached_episode

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


# ----------------------------------------------------------------------------------------------------------------
# One checkpoint
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class CheckpointTask:
    """Everything needed to evaluate one checkpoint (picklable, for worker processes)."""

    key: str                                   # "000010" or "best"
    path: Path
    run_id: str
    env_id: str
    obs_dim: int
    policy_dims: tuple[int, ...]
    trajectories_dir: Path
    fixed: dict[str, np.ndarray]               # policy type -> raw states of best.pt's episode
    policy_types: tuple[str, ...]
    seed: int
    device: str
    random_data: RandomData | None = None


def check_matches_run(policy: LoadedPolicy, path: Path, run_id: str, env_id: str, obs_dim: int,
                      policy_dims: tuple[int, ...]) -> None:
    """A checkpoint must have its run's policy dims, env and observation size."""
    fix = "restore the run's own checkpoint or remove the foreign file"
    if tuple(policy.widths) != tuple(policy_dims):
        raise UserError(f"{path} has policy dims {list(policy.widths)} but run {run_id} was trained with "
                        f"{list(policy_dims)}; {fix}")
    ckpt_env = policy.config.get("env_id")
    if ckpt_env is not None and ckpt_env != env_id:
        raise UserError(f"{path} was trained on {ckpt_env} but run {run_id} is on {env_id}; {fix}")
    if policy.obs_dim != obs_dim:
        raise UserError(f"{path} observes {policy.obs_dim} numbers but run {run_id}'s env {env_id} has {obs_dim}; {fix}")


def evaluate_checkpoint(task: CheckpointTask) -> dict:
    """Metrics of one checkpoint: {"row": {...}} or {"error": "..."} for a corrupt file (other errors raise)."""
    import torch
    torch.set_num_threads(1)  # tiny networks: threading overhead dominates (DESIGN.md, pitfalls)
    try:
        policy = load_checkpoint(task.path)
    except UserError as err:
        return {"key": task.key, "file": str(task.path), "error": str(err)}
    check_matches_run(policy, task.path, task.run_id, task.env_id, task.obs_dim, task.policy_dims)
    row: dict[str, Any] = {"iteration": policy.iteration, "timesteps": policy.timesteps}
    for p in task.policy_types:
        current = cached_episode(task.trajectories_dir, task.key, policy, task.env_id,
                                 stochastic=(p == "stochastic"), seed=task.seed)
        row[f"{p}_current_episode_return"] = current.episode_return
        row.update(trajectory_metrics(policy, task.fixed[p], p, "fixed", device=task.device))
        row.update(trajectory_metrics(policy, current.states, p, "current", device=task.device))
    if task.random_data is not None and task.random_data.trajectories is not None:
        row.update(random_trajectory_metrics(policy, task.random_data.trajectories, device=task.device))
    if task.random_data is not None and task.random_data.line_points is not None:
        row.update(random_line_metrics(policy, task.random_data.line_points, device=task.device))
    return {"key": task.key, "row": row}


def expected_columns(opts: EvalOptions) -> list[str]:
    """history.csv columns for these options, in order."""
    cols = ["iteration", "timesteps", "eval_return"]
    for p in opts.policy_types:
        cols.append(f"{p}_current_episode_return")
        for t in TRAJECTORY_TYPES:
            cols += trajectory_metric_names(p, t)
    if opts.random_trajectories:
        cols += random_trajectory_metric_names()
    if opts.random_lines:
        cols += random_line_metric_names()
    return cols


# ----------------------------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    run_id: str
    out_dir: Path
    files: list[Path]
    evaluated: int
    skipped: int
    bad_checkpoints: list[dict] = field(default_factory=list)
    wandb_url: str | None = None


def _read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _number(text: str):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _complete(row: dict, columns: Iterable[str]) -> bool:
    for c in columns:
        v = row.get(c)
        if c == "eval_return":
            continue  # not every checkpoint was evaluated during training
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
    return True


def write_history(path: Path, rows: list[dict], columns: list[str]) -> None:
    """history.csv atomically: one row per epoch, `columns` first, then any extra columns of earlier runs."""
    extra = sorted({k for r in rows for k in r} - set(columns))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns + extra, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    write_text_atomic(path, buf.getvalue())


def _eval_returns(run: RunPaths) -> dict[int, float]:
    return {int(r["iteration"]): float(r["eval_return"]) for r in read_jsonl(run.metrics)
            if r.get("eval_return") is not None and "iteration" in r}


def _run_checkpoints(tasks: list[CheckpointTask], workers: int, on_done: Callable[[], None]) -> list[dict]:
    if workers <= 1 or len(tasks) <= 1:
        out = []
        for task in tasks:
            out.append(evaluate_checkpoint(task))
            on_done()
        return out
    import multiprocessing
    # spawn, not fork: torch's thread pools do not survive fork reliably.
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        out = []
        for result in pool.map(evaluate_checkpoint, tasks):
            out.append(result)
            on_done()
        return out


def random_data_command(opts: EvalOptions) -> str:
    """The exact randomized_metric_helper.py command that creates the random data evaluate.py reads."""
    which = f"--sweep_id={opts.sweep_id}" if opts.sweep_id else f"--run_id={opts.run_id}"
    return (f"python randomized_metric_helper.py {which} --checkpoints_dir={opts.checkpoints_dir} "
            f"--save_dir={opts.randomized_data_dir}")


def evaluate_run(resolved: ResolvedRun, opts: EvalOptions, *, progress: bool = False) -> RunResult:
    """Evaluate every checkpoint of one run; writes history.csv, summary.json and plots; returns what was written."""
    from tqdm import tqdm

    run, info = resolved.run, resolved.info
    run_id = run.run_id
    checkpoints = run.list_checkpoints()
    if not checkpoints:
        raise UserError(f"run {run_id} has no checkpoints in {run.checkpoints_dir}; train it with train.py "
                        f"(checkpoints are written every --save_every iterations) or pick another run")
    if not run.best.is_file():
        raise UserError(f"run {run_id} has no best.pt in {run.root}; it is written at the first evaluation "
                        f"during training: let the run finish or resume it with train.py --resume={run_id}")
    env_id, config = info.get("env_id"), info.get("config", {})
    policy_dims = tuple(config.get("policy_dims", ()))
    obs_dim = int(info.get("obs_dim") or config.get("obs_dim"))
    best = load_checkpoint(run.best)  # a corrupt best.pt is fatal: it defines the fixed trajectory
    check_matches_run(best, run.best, run_id, env_id, obs_dim, policy_dims)

    out_dir = Path(opts.results_dir) / opts.result_id / run_id  # created by the first (atomic) write
    history_path, summary_path = out_dir / "history.csv", out_dir / "summary.json"
    random_data = None
    if opts.random_lines or opts.random_trajectories:
        random_data = load_random_data(opts.randomized_data_dir, opts.result_id, env_id, obs_dim,
                                       lines=opts.random_lines, trajectories=opts.random_trajectories,
                                       fix_command=random_data_command(opts))

    # Everything earlier results depend on: when any of it changed, nothing old is reused.
    fixed_source = {"checkpoint": "best.pt", "iteration": best.iteration, "timesteps": best.timesteps,
                    "seed": opts.seed, "digest": best.weights_digest,
                    "random_data": random_data.digest() if random_data is not None else None}
    old_summary = {}
    if summary_path.is_file() and not opts.overwrite:
        try:
            old_summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old_summary = {}
    columns = expected_columns(opts)
    old_rows = {}
    if not opts.overwrite and old_summary.get("fixed_trajectory") == fixed_source:
        old_rows = {int(r["iteration"]): r for r in _read_history(history_path) if "iteration" in r}

    fixed = {p: cached_episode(run.trajectories_dir, "best", best, env_id, stochastic=(p == "stochastic"),
                               seed=opts.seed).states for p in opts.policy_types}

    def task(key: str, path: Path) -> CheckpointTask:
        return CheckpointTask(key, path, run_id, env_id, obs_dim, policy_dims, run.trajectories_dir, fixed,
                              opts.policy_types, opts.seed, opts.device, random_data)

    todo = [task(f"{it:06d}", path) for it, path in checkpoints
            if not (it in old_rows and _complete(old_rows[it], columns))]
    best_cols = [c for c in columns if c not in ("iteration", "timesteps", "eval_return")]
    best_reusable = all(f"best_{c}" in old_summary for c in best_cols) and old_rows
    if not best_reusable:
        todo.append(task("best", run.best))
    bar = tqdm(total=len(todo), desc=f"checkpoints of {run_id}", unit="ckpt", leave=False,
               disable=None if progress else True)
    results = _run_checkpoints(todo, opts.workers, lambda: bar.update(1))
    bar.close()

    eval_returns = _eval_returns(run)
    rows = dict(old_rows)
    bad = []
    best_row = None
    for result in results:
        if "error" in result:
            bad.append({"file": result["file"], "error": result["error"]})
            continue
        row = result["row"]
        row["eval_return"] = eval_returns.get(row["iteration"])
        if result["key"] == "best":
            best_row = row
        else:
            rows[row["iteration"]] = row
    existing = {it for it, _ in checkpoints}
    ordered = [rows[it] for it in sorted(rows) if it in existing]
    write_history(history_path, ordered, columns)

    summary = {"run_id": run_id, "env_id": env_id, "source": resolved.source, "run_dir": str(run.root),
               "sweep_id": info.get("sweep_id"), "policy_dims": list(policy_dims),
               "architecture": "c" + ",".join(str(w) for w in policy_dims), **architecture_summary(best),
               "seed": config.get("seed"), "best_iteration": best.iteration, "best_timesteps": best.timesteps,
               "best_eval_return": best.eval_return if best.eval_return is not None else info.get("best_eval_return"),
               "num_checkpoints": len(checkpoints), "num_evaluated": len(ordered), "bad_checkpoints": bad,
               "fixed_trajectory": fixed_source, "evaluation_seed": opts.seed, "columns": columns}
    if best_row is not None:
        summary.update({f"best_{c}": best_row[c] for c in best_cols if c in best_row})
    else:
        summary.update({k: v for k, v in old_summary.items() if k.startswith("best_") and k not in summary})
    write_json_atomic(summary_path, summary)
    files = [history_path, summary_path]
    plot_names = [out_dir / f"{n}.png" for n in RUN_PLOTS]
    if opts.plots and not todo and all(f.is_file() for f in plot_names):
        files += plot_names  # nothing new: the figures on disk are already those of this history
    elif opts.plots:
        from utils.pictures.metric_plots import plot_run
        files += plot_run(ordered, out_dir, title=f"{run_id} ({env_id}, {summary['architecture']})",
                          policy_types=opts.policy_types)
    n_epochs_done = sum(1 for t in todo if t.key != "best")
    result = RunResult(run_id, out_dir, files, evaluated=n_epochs_done, skipped=len(checkpoints) - n_epochs_done,
                       bad_checkpoints=bad)
    if opts.wandb_log and opts.wandb_mode != "disabled":
        result.wandb_url = _log_to_wandb(opts, resolved, out_dir, ordered, summary)
    return result


def _log_to_wandb(opts: EvalOptions, resolved: ResolvedRun, out_dir: Path, rows: list[dict], summary: dict):
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
@dataclass
class EvaluationReport:
    runs: list[RunResult]
    sweep_files: list[Path] = field(default_factory=list)

    @property
    def bad_checkpoints(self) -> list[dict]:
        return [b for r in self.runs for b in r.bad_checkpoints]


def evaluate(opts: EvalOptions, *, wandb_online: bool = False, api_factory: Callable[[], Any] = default_wandb_api,
             progress: bool = False, environ: dict | None = None) -> EvaluationReport:
    """Evaluate the run or the sweep (this SLURM array task's share of it) and, for a sweep, aggregate all results."""
    from tqdm import tqdm

    runs = resolve_runs(opts.checkpoints_dir, run_id=opts.run_id, sweep_id=opts.sweep_id, entity=opts.entity,
                        project=opts.project, wandb_online=wandb_online, api_factory=api_factory,
                        shard=lambda items: slurm_shard(items, environ))
    results = []
    for resolved in tqdm(runs, desc="runs", unit="run", disable=None if progress and len(runs) > 1 else True):
        results.append(evaluate_run(resolved, opts, progress=progress))
    report = EvaluationReport(results)
    if opts.sweep_id:
        report.sweep_files = write_sweep_results(Path(opts.results_dir) / opts.sweep_id, plots=opts.plots)
    return report


def write_sweep_results(sweep_dir: Path, *, plots: bool = True) -> list[Path]:
    """sweep.csv (one row per evaluated run, from every summary.json present) and the per-architecture plots."""
    summaries, histories = [], {}
    for summary_path in sorted(Path(sweep_dir).glob("*/summary.json")):
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        summaries.append(summary)
        histories[summary["run_id"]] = _read_history(summary_path.parent / "history.csv")
    if not summaries:
        return []
    columns = ["run_id", "architecture", "depth", "width", "n", "n_params", "seed", "env_id", "best_iteration",
               "best_timesteps", "best_eval_return", "num_checkpoints", "num_evaluated"]
    columns += sorted({k for s in summaries for k in s if k.startswith("best_") and k not in columns})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", restval="", lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        writer.writerow({k: ("" if s.get(k) is None else s.get(k)) for k in columns})
    path = Path(sweep_dir) / "sweep.csv"
    write_text_atomic(path, buf.getvalue())
    files = [path]
    if plots:
        from utils.pictures.metric_plots import plot_sweep
        files += plot_sweep(summaries, histories, Path(sweep_dir))
    return files
