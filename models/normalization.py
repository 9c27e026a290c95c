"""Observation and reward normalization with the math of Stable-Baselines3's VecNormalize."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLIP_OBS = 10.0
CLIP_REWARD = 10.0
EPSILON = 1e-8


@dataclass
class RunningMeanStd:
    """Running mean and variance over batches (Chan et al. parallel update), float64."""

    mean: np.ndarray
    var: np.ndarray
    count: float = 1e-4  # SB3's initial count: the first batch dominates without dividing by zero

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> "RunningMeanStd":
        return cls(np.zeros(shape, np.float64), np.ones(shape, np.float64))

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64)
        batch_mean, batch_var, batch_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        new_mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.mean, self.var, self.count = new_mean, m2 / total, total


@dataclass
class Normalizer:
    """Normalizes observations ("running", "frozen" or "off") and scales rewards by the std of discounted returns."""

    obs_dim: int
    n_envs: int
    gamma: float = 0.99
    mode: str = "running"
    obs_rms: RunningMeanStd = field(init=False)
    ret_rms: RunningMeanStd = field(init=False)
    returns: np.ndarray = field(init=False)

    def __post_init__(self):
        if self.mode not in ("running", "frozen", "off"):
            raise ValueError(f"obs_norm mode must be running, frozen or off, got {self.mode}")
        self.obs_rms = RunningMeanStd.zeros((self.obs_dim,))
        self.ret_rms = RunningMeanStd.zeros(())
        self.returns = np.zeros(self.n_envs, np.float64)

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """Observation in the policy's input space: (s - mean) / sqrt(var + eps), clipped to +-10; identity when off."""
        return normalize_with(obs, self.obs_rms.mean, self.obs_rms.var, self.mode != "off")

    def observe(self, obs: np.ndarray, warmup: bool = False) -> None:
        """Update observation statistics with raw training observations (always in warm-up, then only if running)."""
        if self.mode == "running" or (warmup and self.mode == "frozen"):
            self.obs_rms.update(obs)

    def scale_rewards(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Rewards divided by the running std of the discounted return, clipped to +-10; updates the statistics."""
        self.returns = self.returns * self.gamma + rewards
        self.ret_rms.update(self.returns)
        scaled = np.clip(rewards / np.sqrt(self.ret_rms.var + EPSILON), -CLIP_REWARD, CLIP_REWARD)
        self.returns[dones] = 0.0
        return scaled

    def state_dict(self) -> dict:
        """The checkpoint's form: arrays as torch tensors (imported here, so that this module, which the evaluation
        worker of models/evaluation.py uses, loads without torch)."""
        import torch

        return {
            "mode": self.mode, "gamma": self.gamma, "clip_obs": CLIP_OBS, "epsilon": EPSILON,
            "obs_mean": torch.from_numpy(self.obs_rms.mean.copy()), "obs_var": torch.from_numpy(self.obs_rms.var.copy()),
            "obs_count": float(self.obs_rms.count),
            "ret_mean": float(self.ret_rms.mean), "ret_var": float(self.ret_rms.var), "ret_count": float(self.ret_rms.count),
            "returns": torch.from_numpy(self.returns.copy()),
        }

    def load_state_dict(self, state: dict, statistics_only: bool = False) -> None:
        """Restore statistics; `statistics_only` keeps this run's mode and per-env returns (for --stats_path)."""
        self.obs_rms = RunningMeanStd(state["obs_mean"].numpy().astype(np.float64).copy(),
                                      state["obs_var"].numpy().astype(np.float64).copy(), float(state["obs_count"]))
        self.ret_rms = RunningMeanStd(np.float64(state["ret_mean"]), np.float64(state["ret_var"]), float(state["ret_count"]))
        if not statistics_only:
            self.mode = state["mode"]
            returns = state["returns"].numpy().astype(np.float64)
            if returns.shape == self.returns.shape:
                self.returns = returns.copy()


def normalization_affine(mean: np.ndarray, var: np.ndarray, enabled: bool = True,
                         epsilon: float = EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) of the observation transform, normalize(s) = clip((s - shift) / scale, -clip_obs, clip_obs)
    in raw observation units, scale = sqrt(var + epsilon); (0, 1) when normalization is off (the transform then
    is the identity, no clip)."""
    if not enabled:
        return np.zeros_like(mean, dtype=np.float64), np.ones_like(var, dtype=np.float64)
    return mean, np.sqrt(var + epsilon)


def normalize_with(obs: np.ndarray, mean: np.ndarray, var: np.ndarray, enabled: bool = True, *,
                   clip_obs: float = CLIP_OBS, epsilon: float = EPSILON) -> np.ndarray:
    """VecNormalize's observation transform with given statistics, clip((obs - mean) / sqrt(var + epsilon),
    -clip_obs, clip_obs): raw observations -> the policy's input space (float64). Our own runs always use
    CLIP_OBS and EPSILON; statistics read from SB3 files bring their own."""
    obs = np.asarray(obs, dtype=np.float64)
    if not enabled:
        return obs
    shift, scale = normalization_affine(mean, var, epsilon=epsilon)
    return np.clip((obs - shift) / scale, -clip_obs, clip_obs)


@dataclass(frozen=True)
class ObsStatistics:
    """Observation normalization statistics on their own (an SB3 VecNormalize file), for --stats_path."""

    path: object  # the file they came from (a Path), named in messages
    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_norm_enabled: bool
    clip_obs: float = CLIP_OBS
    epsilon: float = EPSILON
