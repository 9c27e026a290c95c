"""What evaluating one checkpoint computes: its history.csv row of region metrics, or why its file is unreadable.

For every policy type, the checkpoint is measured along the fixed trajectory (best.pt's episode) and along its
own current episode, both in its own input space (docs/design.md, "Metrics"); optionally also along random-action
trajectories and random lines. A task holds only plain data, so it can be sent to a worker process.

The current episodes are sampled before the counting, many checkpoints at a time (`EpisodeBatch`,
`sample_episode_batch`: one env per episode, stepped in lockstep with one stacked forward pass per step), into the
run's trajectory cache, where `evaluate_checkpoint` finds them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from models.checkpoint import LoadedPolicy, load_checkpoint
from utils.analysis.metrics import (TRAJECTORY_TYPES, random_line_metric_names, random_line_metrics,
                                    random_trajectory_metric_names, random_trajectory_metrics,
                                    trajectory_metric_names, trajectory_metrics)
from utils.analysis.random_data import RandomData
from utils.analysis.trajectories import EpisodeRequest, cached_episode, cached_episodes
from utils.errors import UserError

BEST = "best"  # the key of best.pt among a run's checkpoints (the others are 6-digit iterations)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class CheckpointMetrics:
    """A checkpoint that was evaluated: its key and its metrics (iteration, timesteps and one value per column)."""

    key: str
    row: dict[str, Any]

    @property
    def iteration(self) -> int:
        return int(self.row["iteration"])


@dataclass(frozen=True)
class UnreadableCheckpoint:
    """A checkpoint file that could not be loaded (truncated, corrupt, not ours), and why."""

    key: str
    file: str
    error: str


CheckpointResult = Union[CheckpointMetrics, UnreadableCheckpoint]


def check_matches_run(policy: LoadedPolicy, path: Path, run_id: str, env_id: str, obs_dim: int,
                      policy_dims: tuple[int, ...]) -> None:
    """A checkpoint must have its run's policy dims, env and observation size (else a UserError naming the file)."""
    fix = "restore the run's own checkpoint or remove the foreign file"
    if tuple(policy.widths) != tuple(policy_dims):
        raise UserError(f"{path} has policy dims {list(policy.widths)} but run {run_id} was trained with "
                        f"{list(policy_dims)}; {fix}")
    ckpt_env = policy.config.get("env_id")
    if ckpt_env is not None and ckpt_env != env_id:
        raise UserError(f"{path} was trained on {ckpt_env} but run {run_id} is on {env_id}; {fix}")
    if policy.obs_dim != obs_dim:
        raise UserError(f"{path} observes {policy.obs_dim} numbers but run {run_id}'s env {env_id} has {obs_dim}; "
                        f"{fix}")


def evaluate_checkpoint(task: CheckpointTask) -> CheckpointResult:
    """The metrics of one checkpoint, or UnreadableCheckpoint for a corrupt file (a foreign checkpoint raises)."""
    import torch
    torch.set_num_threads(1)  # tiny networks: threading overhead dominates (docs/design.md, "Pitfalls we know of")
    try:
        policy = load_checkpoint(task.path)
    except UserError as err:
        return UnreadableCheckpoint(task.key, str(task.path), str(err))
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
    return CheckpointMetrics(task.key, row)


@dataclass(frozen=True)
class EpisodeBatch:
    """Checkpoints of one run whose episodes of every policy type are sampled together (picklable, for workers)."""

    run_id: str
    env_id: str
    obs_dim: int
    policy_dims: tuple[int, ...]
    trajectories_dir: Path
    checkpoints: tuple[tuple[str, Path], ...]  # (key, path): "000010" or "best"
    policy_types: tuple[str, ...]
    seed: int


def sample_episode_batch(batch: EpisodeBatch) -> None:
    """Put every checkpoint's episode of every policy type (seeded batch.seed) in the run's trajectory cache; the
    missing ones are sampled together in lockstep, to the same states as one at a time. A checkpoint that is
    unreadable or not the run's is left out: evaluate_checkpoint reports it."""
    import torch
    torch.set_num_threads(1)
    keyed = []
    for key, path in batch.checkpoints:
        try:
            policy = load_checkpoint(path)
            check_matches_run(policy, path, batch.run_id, batch.env_id, batch.obs_dim, batch.policy_dims)
        except UserError:
            continue
        keyed += [(key, EpisodeRequest(policy, p == "stochastic", batch.seed)) for p in batch.policy_types]
    cached_episodes(batch.trajectories_dir, batch.env_id, keyed)


def expected_columns(policy_types: Sequence[str], *, random_trajectories: bool = False,
                     random_lines: bool = False) -> list[str]:
    """history.csv columns, in order: iteration, timesteps, eval_return, then every metric that is computed."""
    cols = ["iteration", "timesteps", "eval_return"]
    for p in policy_types:
        cols.append(f"{p}_current_episode_return")
        for t in TRAJECTORY_TYPES:
            cols += trajectory_metric_names(p, t)
    if random_trajectories:
        cols += random_trajectory_metric_names()
    if random_lines:
        cols += random_line_metric_names()
    return cols
