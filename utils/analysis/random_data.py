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

from models.checkpoint import LoadedPolicy, load_checkpoint
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
    # Every run.json and best.pt is read before the first file is written, so a damaged one changes nothing.
    by_env: dict[str, list[tuple[RunPaths, LoadedPolicy]]] = {}
    for run in runs:
        env_id = read_run_info(run)["env_id"]
        if not run.best.is_file():
            raise UserError(f"run {run.run_id} has no best.pt in {run.root}; train it to the end or drop it")
        by_env.setdefault(env_id, []).append((run, load_checkpoint(run.best)))
    written = []
    steps, total = 0, len(runs) + len(by_env)

    def step(what: str) -> None:
        nonlocal steps
        steps += 1
        progress(f"[{steps}/{total}] {what}")

    for env_id, env_runs in sorted(by_env.items()):
        pools = []
        for run, policy in env_runs:
            step(f"best trajectory of {run.run_id}")
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
    """Load the random data evaluate.py was asked for; missing, damaged or foreign files stop with the command that
    makes them (a UserError naming the file). Reading changes nothing."""
    out = RandomData(None, None)
    if lines:
        out.line_points = _random_data_arrays(lines_path(data_dir, data_id, env_id), "points", env_id, obs_dim,
                                              fix_command)["points"]
    if trajectories:
        data = _random_data_arrays(trajectories_path(data_dir, data_id, env_id), "states", env_id, obs_dim,
                                   fix_command)
        out.trajectories = np.split(data["states"], np.cumsum(data["lengths"])[:-1])
    return out


def _random_data_arrays(path: Path, key: str, env_id: str, obs_dim: int, fix_command: str) -> dict[str, np.ndarray]:
    """The arrays of one random-data file, checked against what generate_random_data writes: `key` (points or
    states) as finite float64 raw states of this env's size, its env id and seed, and for trajectories the
    episode lengths that split the states."""
    fix = f"re-create it with `{fix_command}`"
    if not path.is_file():
        raise UserError(f"random data {path} is missing; create it with `{fix_command}`")
    try:
        data = load_npz(path)
    except ValueError as err:
        raise UserError(f"random data {err}; {fix}") from None
    problem = _random_data_problem(data, key, env_id, obs_dim)
    if problem is not None:
        raise UserError(f"random data {path} is damaged ({problem}); {fix}")
    return data


def _random_data_problem(data: dict[str, np.ndarray], key: str, env_id: str, obs_dim: int) -> str | None:
    """What is wrong with a random-data file's arrays, None when nothing is."""
    states = data.get(key)
    if states is None:
        return f"it holds no {key}"
    if states.dtype != np.float64 or states.ndim != 2 or len(states) == 0:
        return f"its {key} are not a float64 array of states"
    if states.shape[1] != obs_dim:
        return f"its {key} have {states.shape[1]} numbers each, the run observes {obs_dim}"
    if not np.isfinite(states).all():
        return f"its {key} are not all finite"
    recorded = data.get("env_id")
    if recorded is None or recorded.shape != () or recorded.dtype.kind != "U" or str(recorded) != env_id:
        return f"it records env {recorded!s}, not {env_id}" if recorded is not None else "it records no env id"
    seed = data.get("seed")
    if seed is None or seed.shape != () or seed.dtype.kind not in "iu":
        return "it records no seed"
    if key == "states":
        lengths = data.get("lengths")
        if lengths is None or lengths.dtype.kind not in "iu" or lengths.ndim != 1:
            return "it holds no trajectory lengths (whole numbers)"
        if len(lengths) == 0 or (lengths < 1).any() or lengths.sum() != len(states):
            return f"its trajectory lengths do not add up to its {len(states)} states"
    return None
