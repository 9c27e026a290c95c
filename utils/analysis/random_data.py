"""Random lines and random-action trajectories shared by all runs of a sweep (randomized_metric_helper.py).

Files, one pair per env (runs of different envs cannot share states), under `<save_dir>/<sweep or run id>/`:
- `<env_id>_random_lines.npz`: `points` (N, obs_dim) raw states drawn uniformly from the best policies'
  deterministic trajectories of all runs; each checkpoint later draws lines through them (utils.analysis.metrics).
- `<env_id>_random_trajectories.npz`: `states` (sum T_k, obs_dim) of episodes under uniform random actions,
  concatenated, with `lengths` (K,) to split them.
Both carry `seed` and `env_id`. Plain numeric/unicode arrays only: read with allow_pickle=False.
"""
from __future__ import annotations

import hashlib

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from models.checkpoint import load_checkpoint
from utils.errors import UserError
from utils.runs.io import load_npz, save_npz_atomic
from utils.runs.store import RunPaths, read_run_info
from utils.analysis.trajectories import cached_episode, random_action_episodes


def _safe(env_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", env_id)


def lines_path(data_dir: Path, data_id: str, env_id: str) -> Path:
    return Path(data_dir) / data_id / f"{_safe(env_id)}_random_lines.npz"


def trajectories_path(data_dir: Path, data_id: str, env_id: str) -> Path:
    return Path(data_dir) / data_id / f"{_safe(env_id)}_random_trajectories.npz"


def random_data_command(*, run_id: str | None, sweep_id: str | None, checkpoints_dir: Path, save_dir: Path) -> str:
    """The exact randomized_metric_helper.py command that writes the random data of this run or sweep to save_dir."""
    which = f"--sweep_id={sweep_id}" if sweep_id else f"--run_id={run_id}"
    return f"python randomized_metric_helper.py {which} --checkpoints_dir={checkpoints_dir} --randomized_data_dir={save_dir}"


@dataclass
class RandomData:
    """What evaluate.py needs for one env: line points (raw states) and random-action trajectories (raw states)."""

    line_points: np.ndarray | None
    trajectories: list[np.ndarray] | None

    def digest(self) -> str:
        """A short hash of the data, so results computed from other random data are never reused."""
        h = hashlib.sha256()
        for array in [self.line_points, *(self.trajectories or [])]:
            if array is not None:
                h.update(np.ascontiguousarray(array).tobytes())
                h.update(str(array.shape).encode())
        return h.hexdigest()[:16]


def generate_random_data(runs: Sequence[RunPaths], save_dir: Path, data_id: str, *, num_lines: int = 100,
                         num_trajectories: int = 10, seed: int = 0,
                         progress: Callable[[str], None] = lambda msg: None) -> list[Path]:
    """Write random line points and random-action trajectories for every env among `runs`; returns the files.
    `progress` gets one line per step: `[k/n] what is being done`."""
    by_env: dict[str, list[RunPaths]] = {}
    for run in runs:
        by_env.setdefault(read_run_info(run)["env_id"], []).append(run)
    written = []
    steps, total = 0, len(runs) + len(by_env)

    def step(what: str) -> None:
        nonlocal steps
        steps += 1
        progress(f"[{steps}/{total}] {what}")

    for env_id, env_runs in sorted(by_env.items()):
        pools = []
        for run in env_runs:
            step(f"best trajectory of {run.run_id}")
            if not run.best.is_file():
                raise UserError(f"run {run.run_id} has no best.pt in {run.root}; train it to the end or drop it")
            policy = load_checkpoint(run.best)
            # Same seed and cache as evaluate.py's fixed trajectory, so nothing is sampled twice.
            pools.append(cached_episode(run.trajectories_dir, "best", policy, env_id, stochastic=False,
                                        seed=seed).states)
        pool = np.concatenate(pools)
        rng = np.random.default_rng(seed)
        points = pool[rng.choice(len(pool), size=num_lines, replace=len(pool) < num_lines)]
        path = lines_path(save_dir, data_id, env_id)
        save_npz_atomic(path, points=points, seed=np.int64(seed), env_id=np.str_(env_id))
        written.append(path)
        step(f"{num_trajectories} random-action episodes of {env_id}")
        episodes = random_action_episodes(env_id, num_trajectories, seed)
        path = trajectories_path(save_dir, data_id, env_id)
        save_npz_atomic(path, states=np.concatenate([e.states for e in episodes]),
                        lengths=np.asarray([e.timesteps for e in episodes], dtype=np.int64),
                        seed=np.int64(seed), env_id=np.str_(env_id))
        written.append(path)
    return written


def load_random_data(data_dir: Path, data_id: str, env_id: str, obs_dim: int, *, lines: bool, trajectories: bool,
                     fix_command: str) -> RandomData:
    """Load the random data evaluate.py was asked for; missing or foreign files stop with the command that makes them."""
    out = RandomData(None, None)
    for wanted, path in ((lines, lines_path(data_dir, data_id, env_id)),
                         (trajectories, trajectories_path(data_dir, data_id, env_id))):
        if not wanted:
            continue
        if not path.is_file():
            raise UserError(f"random data {path} is missing; create it with `{fix_command}`")
        try:
            data = load_npz(path)
            key = "points" if path.name.endswith("_lines.npz") else "states"
            states = data[key]
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"random data {path} is unreadable ({type(err).__name__}); re-create it with "
                            f"`{fix_command}`") from None
        if states.ndim != 2 or states.shape[1] != obs_dim or not np.isfinite(states).all():
            raise UserError(f"random data {path} holds states of shape {states.shape}, the run observes {obs_dim} "
                            f"numbers; re-create it with `{fix_command}`")
        if key == "points":
            out.line_points = states
        else:
            lengths = data.get("lengths")
            if lengths is None or lengths.ndim != 1 or (lengths < 1).any() or lengths.sum() != len(states):
                raise UserError(f"random data {path} has trajectory lengths that do not add up to its "
                                f"{len(states)} states; re-create it with `{fix_command}`")
            out.trajectories = np.split(states, np.cumsum(lengths)[:-1])
    return out
