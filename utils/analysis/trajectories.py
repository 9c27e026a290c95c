"""Evaluation episodes of a checkpoint's policy (or of uniform random actions), cached as raw-state .npz files.

A trajectory is the states s_0..s_{T-1} of one episode: the initial state and every state at which the policy
acted before the episode ended (docs/design.md, "Metrics"). The observation returned by the final step is not part
of it: it is terminal, or (for a time-limit truncation) a state the policy never acted in. States are raw
(un-normalized) observations; every checkpoint normalizes them with its own statistics when they are measured.

Sampling is seeded: the env is reset with `seed` and stochastic actions draw from numpy's default_rng(seed),
so re-sampling gives exactly the same states, and a cache is only an optimization.

`sample_episodes` steps many episodes (of one policy or of many checkpoints, deterministic or stochastic) in
lockstep, one env each, with one stacked forward pass per step (models.mlp.stacked_numpy_mlp); each episode is
bit-identical to `sample_episode` of its policy and seed alone, so batching changes the time, never the states.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from envs.resolve import make_env
from models.checkpoint import LoadedPolicy
from models.mlp import stack_layers, stacked_numpy_mlp
from models.networks import numpy_layers
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


@dataclass(frozen=True)
class EpisodeRequest:
    """One policy episode to sample: deterministic (action = mean) or stochastic, reset with `seed`."""

    policy: LoadedPolicy
    stochastic: bool = False
    seed: int = 0


def sample_episodes(env_id: str, requests: Sequence[EpisodeRequest], *,
                    max_steps: int | None = None) -> list[Trajectory]:
    """One episode per request, stepped in lockstep (an env each, one stacked forward pass per step); episode k is
    bit-identical to sample_episode(env_id, requests[k].policy, stochastic=..., seed=...) sampled alone."""
    if not requests:
        return []
    envs = [make_env(env_id) for _ in requests]
    try:
        low, high = envs[0].action_space.low.astype(np.float64), envs[0].action_space.high.astype(np.float64)
        rngs, first = [], []
        for env, request in zip(envs, requests):
            env.action_space.seed(request.seed)
            rngs.append(np.random.default_rng(request.seed))
            first.append(env.reset(seed=request.seed)[0])
        obs = np.asarray(first, dtype=np.float64)                                       # (B, obs_dim)
        # Gaussian policies (ours, PPO/A2C) go through the stacked forward pass; a policy that squashes its action
        # or computes its spread from the state (SAC/TD3 actors read from SB3) acts through its own actor, row by row
        plain = [k for k, r in enumerate(requests) if r.policy.squash is None and r.policy.log_std_net is None]
        actors = {k: r.policy.actor() for k, r in enumerate(requests) if k not in set(plain)}
        networks = {k: numpy_layers(requests[k].policy.layers) for k in plain}
        groups: dict[tuple, list[int]] = {}  # networks of one shape are stacked together
        for k, net in networks.items():
            groups.setdefault(tuple(W.shape for W, _ in net), []).append(k)
        stacks = [(np.array(rows), stack_layers([networks[k] for k in rows])) for rows in groups.values()]
        act_dim = low.shape[0]
        # each row's own normalization, elementwise as LoadedPolicy.normalize does it (off: shift 0, scale 1, no
        # clip, which leaves the states' bits as they are)
        affine = [r.policy.normalization_affine() for r in requests]
        shift, scale = np.stack([a[0] for a in affine]), np.stack([a[1] for a in affine])
        clip = np.array([[r.policy.clip_obs if r.policy.obs_norm_enabled else np.inf] for r in requests])
        noisy = [k for k, r in enumerate(requests) if r.stochastic and k not in actors]
        std = {k: np.exp(requests[k].policy.log_std.numpy()) for k in noisy}
        states, actions, rewards = [], [], []  # per step: (B, obs_dim), (B, act_dim), (B,); finished rows unused
        lengths = np.zeros(len(requests), dtype=np.int64)
        active = np.ones(len(requests), dtype=bool)
        while active.any() and (max_steps is None or len(states) < max_steps):
            x = np.clip((obs - shift) / scale, -clip, clip)
            a = np.empty((len(requests), act_dim))
            for rows, layers in stacks:
                a[rows] = stacked_numpy_mlp(layers, x[rows])
            for k in noisy:
                if active[k]:  # a finished episode draws no more noise, as sample_episode's loop has ended
                    a[k] = a[k] + std[k] * rngs[k].standard_normal(act_dim)
            for k, act in actors.items():
                if active[k]:
                    noise = rngs[k].standard_normal(act_dim) if requests[k].stochastic else None
                    a[k] = act(obs[k], noise)
            a = np.clip(a, low, high)
            states.append(obs.copy())
            step_rewards = np.zeros(len(requests))
            for k in np.flatnonzero(active):
                next_obs, reward, terminated, truncated, _ = envs[k].step(a[k])
                obs[k] = next_obs
                step_rewards[k] = float(reward)
                lengths[k] += 1
                active[k] = not (terminated or truncated)
            actions.append(a)
            rewards.append(step_rewards)
    finally:
        for env in envs:
            env.close()
    if not states:
        return [Trajectory(np.zeros((0, obs.shape[1])), np.zeros((0, act_dim)), np.zeros(0)) for _ in requests]
    S, A, R = np.stack(states, axis=1), np.stack(actions, axis=1), np.stack(rewards, axis=1)  # (B, steps, ...)
    return [Trajectory(S[k, :T].copy(), A[k, :T].copy(), R[k, :T].copy()) for k, T in enumerate(lengths)]


def cache_path(trajectories_dir: Path, checkpoint_key: str, policy_type: str, seed: int) -> Path:
    """<run>/trajectories/<checkpoint>_<policy type>_seed<seed>.npz, checkpoint = 6-digit iteration or 'best'."""
    return Path(trajectories_dir) / f"{checkpoint_key}_{policy_type}_seed{seed}.npz"


def cached_episode(trajectories_dir: Path, checkpoint_key: str, policy: LoadedPolicy, env_id: str, *,
                   stochastic: bool, seed: int, notify: Callable[[str], None] = logger.warning) -> Trajectory:
    """The policy's episode from the cache when it was sampled from this very checkpoint, else sampled and cached.

    Sampling is seeded, so the cache is only an optimization: a file sampled from other weights or another env is
    re-sampled silently, an unreadable or damaged one with a notice (`notify`), never an error.
    """
    return cached_episodes(trajectories_dir, env_id, [(checkpoint_key, EpisodeRequest(policy, stochastic, seed))],
                           notify=notify)[0]


def cached_episodes(trajectories_dir: Path, env_id: str, keyed: Sequence[tuple[str, EpisodeRequest]], *,
                    notify: Callable[[str], None] = logger.warning) -> list[Trajectory]:
    """cached_episode for many (checkpoint key, request) pairs: the cache misses are sampled together in lockstep
    (sample_episodes; the same states as one at a time) and cached; a pair asked for twice is sampled once."""
    found: dict[Path, Trajectory] = {}
    missing: dict[Path, EpisodeRequest] = {}
    for key, request in keyed:
        path = cache_path(trajectories_dir, key, "stochastic" if request.stochastic else "deterministic",
                          request.seed)
        if path in found or path in missing:
            continue
        cached = _read_cache(path, request.policy, env_id, notify)
        if cached is not None:
            found[path] = cached
        else:
            missing[path] = request
    sampled = sample_episodes(env_id, list(missing.values())) if missing else []
    for (path, request), traj in zip(missing.items(), sampled):
        policy = request.policy
        save_npz_atomic(path, states=traj.states, actions=traj.actions, rewards=traj.rewards,
                        iteration=np.int64(policy.iteration), timesteps=np.int64(policy.timesteps),
                        env_id=np.str_(env_id), seed=np.int64(request.seed), digest=np.str_(policy.weights_digest))
        found[path] = traj
    return [found[cache_path(trajectories_dir, key, "stochastic" if r.stochastic else "deterministic", r.seed)]
            for key, r in keyed]


def _read_cache(path: Path, policy: LoadedPolicy, env_id: str, notify: Callable[[str], None]) -> Trajectory | None:
    """The cached episode at `path` if it was sampled from this policy's weights on this env, else None (a damaged
    file with a notice)."""
    if not path.is_file():
        return None
    try:
        cached = _cache_entry(path, load_npz(path), policy)
    except ValueError as err:  # load_npz and _cache_entry name the file and what is wrong with it
        notify(f"notice: trajectory cache {err}; the episode is sampled again and the cache re-made")
        return None
    # best.pt moves while a run trains, and a resume that could not restore its envs re-trains an iteration: a
    # cache sampled from other weights is stale.
    if cached.digest == policy.weights_digest and cached.env_id == env_id:
        return cached.trajectory
    return None


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
