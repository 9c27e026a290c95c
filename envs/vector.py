"""A small vectorized env: n copies stepped in lockstep, reset on the same step they finish.

Written here instead of gymnasium.vector because we need (a) same-step autoreset with the final observation
kept for bootstrapping truncated episodes, (b) exact state snapshots for resume and (c) low per-step overhead.
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np

from envs.resolve import make_env
from envs.snapshot import get_env_snapshot, set_env_snapshot


@dataclass
class VecStep:
    obs: np.ndarray          # (n, obs_dim) float64: next observation; for finished envs the first one after reset
    rewards: np.ndarray      # (n,) float64 raw rewards
    terminated: np.ndarray   # (n,) bool
    truncated: np.ndarray    # (n,) bool
    final_obs: np.ndarray    # (n, obs_dim): the last observation of finished episodes (rows of unfinished envs: obs)
    episode_returns: list[float]  # raw returns of episodes that finished on this step
    episode_lengths: list[int]


class _LocalEnv:
    """One env with its episode bookkeeping, run in this process or inside a worker."""

    def __init__(self, env_id: str, seed: int):
        self.env = make_env(env_id)
        self.seed = seed
        self.ep_return, self.ep_length = 0.0, 0
        self.obs, _ = self.env.reset(seed=seed)
        self.env.action_space.seed(seed)

    def step(self, action):
        obs, reward, terminated, truncated, _ = self.env.step(action)
        self.ep_return += float(reward)
        self.ep_length += 1
        final_obs, finished = obs, None
        if terminated or truncated:
            finished = (self.ep_return, self.ep_length)
            self.ep_return, self.ep_length = 0.0, 0
            obs, _ = self.env.reset()
        self.obs = obs
        return obs, float(reward), bool(terminated), bool(truncated), final_obs, finished

    def reset(self, seed):
        self.ep_return, self.ep_length = 0.0, 0
        self.obs, _ = self.env.reset(seed=seed)
        return self.obs

    def get_snapshot(self, _unused=None) -> dict:
        snap = get_env_snapshot(self.env)
        snap.update(obs=np.asarray(self.obs, dtype=np.float64), ep_return=self.ep_return, ep_length=self.ep_length)
        return snap

    def set_snapshot(self, snap: dict) -> bool:
        if not snap["resumable"]:
            return False
        set_env_snapshot(self.env, snap)
        self.obs = np.asarray(snap["obs"], dtype=np.float64)
        self.ep_return, self.ep_length = float(snap["ep_return"]), int(snap["ep_length"])
        return True

    def close(self):
        self.env.close()


def _worker(conn, env_id: str, seed: int) -> None:
    local = _LocalEnv(env_id, seed)
    conn.send(local.obs)
    while True:
        cmd, arg = conn.recv()
        if cmd == "step":
            conn.send(local.step(arg))
        elif cmd == "reset":
            conn.send(local.reset(arg))
        elif cmd == "get_snapshot":
            conn.send(local.get_snapshot(arg))
        elif cmd == "set_snapshot":
            conn.send(local.set_snapshot(arg))
        elif cmd == "close":
            local.close()
            conn.close()
            return


class VecEnv:
    """n envs of one id, seeded seed, seed+1, ...; `subprocess=True` runs each in its own worker process."""

    def __init__(self, env_id: str, n_envs: int, seed: int, subprocess: bool = False):
        self.env_id, self.n_envs, self.subprocess = env_id, n_envs, subprocess
        seeds = [seed + i for i in range(n_envs)]
        if subprocess:
            ctx = mp.get_context("spawn")  # fork after torch has started threads is unsafe
            self._conns, self._procs = [], []
            for s in seeds:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, env_id, s), daemon=True)
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
            first_obs = [c.recv() for c in self._conns]
        else:
            self._envs = [_LocalEnv(env_id, s) for s in seeds]
            first_obs = [e.obs for e in self._envs]
        probe = make_env(env_id)
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        self.obs = np.asarray(first_obs, dtype=np.float64)

    def _call_all(self, cmd: str, args: list) -> list:
        if self.subprocess:
            for conn, arg in zip(self._conns, args):
                conn.send((cmd, arg))
            return [conn.recv() for conn in self._conns]
        return [getattr(env, cmd)(arg) for env, arg in zip(self._envs, args)]

    def step(self, actions: np.ndarray) -> VecStep:
        """Step every env with its row of `actions`; finished envs are reset on this same step."""
        results = self._call_all("step", list(actions))
        obs = np.asarray([r[0] for r in results], dtype=np.float64)
        finished = [r[5] for r in results if r[5] is not None]
        step = VecStep(
            obs=obs,
            rewards=np.array([r[1] for r in results], dtype=np.float64),
            terminated=np.array([r[2] for r in results], dtype=bool),
            truncated=np.array([r[3] for r in results], dtype=bool),
            final_obs=np.asarray([r[4] for r in results], dtype=np.float64),
            episode_returns=[f[0] for f in finished],
            episode_lengths=[f[1] for f in finished],
        )
        self.obs = obs
        return step

    def reset(self, seed: int) -> np.ndarray:
        """Reset every env with seeds seed, seed+1, ...; returns the first observations."""
        self.obs = np.asarray(self._call_all("reset", [seed + i for i in range(self.n_envs)]), dtype=np.float64)
        return self.obs

    def get_snapshots(self) -> list[dict]:
        return self._call_all("get_snapshot", [None] * self.n_envs)

    def set_snapshots(self, snapshots: list[dict]) -> bool:
        """Restore snapshots; False when an env could not be restored exactly (it keeps a fresh episode)."""
        ok = all(self._call_all("set_snapshot", snapshots))
        self.obs = np.asarray([s["obs"] for s in snapshots], dtype=np.float64) if ok else self.obs
        return ok

    def close(self) -> None:
        if self.subprocess:
            for conn, proc in zip(self._conns, self._procs):
                try:
                    conn.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
                proc.join(timeout=5)
        else:
            for env in self._envs:
                env.close()
