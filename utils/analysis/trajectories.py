"""Evaluation episodes of a checkpoint's policy (or of uniform random actions), cached as raw-state .npz files.

A trajectory is the states s_0..s_{T-1} of one episode: the initial state and every state at which the policy
acted before the episode ended (docs/design.md, "Metrics"). The observation returned by the final step is not part
of it: it is terminal, or (for a time-limit truncation) a state the policy never acted in. States are raw
(un-normalized) observations; every checkpoint normalizes them with its own statistics when they are measured.

Sampling is seeded: the env is reset with `seed` and stochastic actions draw from numpy's default_rng(seed),
so re-sampling gives exactly the same states, and a cache is only an optimization.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from envs.resolve import make_env
from models.checkpoint import LoadedPolicy
from utils.runs.io import load_npz, save_npz_atomic

POLICY_TYPES = ("deterministic", "stochastic")
logger = logging.getLogger("deep_rl_regions")


@dataclass
class Trajectory:
    """One episode: raw states (T, obs_dim), the actions taken (T, act_dim), rewards (T,)."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of the env's (raw) rewards."""
        return float(self.rewards.sum())

    @property
    def timesteps(self) -> int:
        return int(self.states.shape[0])


def sample_episode(env_id: str, policy: LoadedPolicy | None, *, stochastic: bool = False, seed: int = 0,
                   max_steps: int | None = None) -> Trajectory:
    """One episode of `policy` on `env_id` (deterministic: the Gaussian's mean; stochastic: mean + std noise),
    or of uniform random actions when `policy` is None; actions are clipped to the action space as in training."""
    env = make_env(env_id)
    try:
        low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
        env.action_space.seed(seed)
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=seed)
        act = policy.actor() if policy is not None else None
        states, actions, rewards = [], [], []
        done = False
        while not done and (max_steps is None or len(states) < max_steps):
            s = np.asarray(obs, dtype=np.float64)
            if act is None:
                a = rng.uniform(low, high)
            else:
                a = np.clip(act(s, rng.standard_normal(policy.act_dim) if stochastic else None), low, high)
            obs, reward, terminated, truncated, _ = env.step(a)
            states.append(s)
            actions.append(a)
            rewards.append(float(reward))
            done = terminated or truncated
    finally:
        env.close()
    return Trajectory(np.asarray(states, dtype=np.float64), np.asarray(actions, dtype=np.float64),
                      np.asarray(rewards, dtype=np.float64))


def cache_path(trajectories_dir: Path, checkpoint_key: str, policy_type: str, seed: int) -> Path:
    """<run>/trajectories/<checkpoint>_<policy type>_seed<seed>.npz, checkpoint = 6-digit iteration or 'best'."""
    return Path(trajectories_dir) / f"{checkpoint_key}_{policy_type}_seed{seed}.npz"


def cached_episode(trajectories_dir: Path, checkpoint_key: str, policy: LoadedPolicy, env_id: str, *,
                   stochastic: bool, seed: int, notify: Callable[[str], None] = logger.warning) -> Trajectory:
    """The policy's episode from the cache when it was sampled from this very checkpoint, else sampled and cached.

    Sampling is seeded, so the cache is only an optimization: a file sampled from other weights or another env is
    re-sampled silently, an unreadable or damaged one with a notice (`notify`), never an error.
    """
    policy_type = "stochastic" if stochastic else "deterministic"
    path = cache_path(trajectories_dir, checkpoint_key, policy_type, seed)
    if path.is_file():
        try:
            cached = _cache_entry(path, load_npz(path), policy)
        except ValueError as err:  # load_npz and _cache_entry name the file and what is wrong with it
            notify(f"notice: trajectory cache {err}; the episode is sampled again and the cache re-made")
        else:
            # best.pt moves while a run trains, and a resume that could not restore its envs re-trains an
            # iteration: a cache sampled from other weights is stale.
            if cached.digest == policy.weights_digest and cached.env_id == env_id:
                return cached.trajectory
    traj = sample_episode(env_id, policy, stochastic=stochastic, seed=seed)
    save_npz_atomic(path, states=traj.states, actions=traj.actions, rewards=traj.rewards,
                    iteration=np.int64(policy.iteration), timesteps=np.int64(policy.timesteps),
                    env_id=np.str_(env_id), seed=np.int64(seed), digest=np.str_(policy.weights_digest))
    return traj


@dataclass(frozen=True)
class _CacheEntry:
    trajectory: Trajectory
    env_id: str
    digest: str  # LoadedPolicy.weights_digest of the checkpoint it was sampled from


def _cache_entry(path: Path, data: dict[str, np.ndarray], policy: LoadedPolicy) -> _CacheEntry:
    """A trajectory cache file's contents, checked: one episode of states (T, obs_dim), actions (T, act_dim) and
    rewards (T,) as finite float64 arrays, T >= 1, with its env id and weights digest; else a ValueError
    "<path> is damaged (...)"."""
    def damaged(problem: str) -> ValueError:
        return ValueError(f"{path} is damaged ({problem})")

    for key in ("env_id", "digest"):
        if key not in data or data[key].shape != () or data[key].dtype.kind != "U":
            raise damaged(f"no {key} string")
    states, actions, rewards = (data.get(key) for key in ("states", "actions", "rewards"))
    steps = states.shape[0] if states is not None and states.ndim == 2 else -1
    for key, array, shape, named in (("states", states, (steps, policy.obs_dim), f"(T, {policy.obs_dim})"),
                                     ("actions", actions, (steps, policy.act_dim), f"(T, {policy.act_dim})"),
                                     ("rewards", rewards, (steps,), "(T,)")):
        if array is None or array.dtype != np.float64 or array.shape != shape or not np.isfinite(array).all():
            raise damaged(f"its {key} are not finite float64 numbers of shape {named}")
    if steps < 1:
        raise damaged("an episode of no steps")
    return _CacheEntry(Trajectory(states, actions, rewards), str(data["env_id"]), str(data["digest"]))


def random_action_episodes(env_id: str, num: int, seed: int) -> list[Trajectory]:
    """`num` episodes under uniform random actions, episode k seeded with seed + k."""
    return [sample_episode(env_id, None, seed=seed + k) for k in range(num)]
