"""A PPO rollout and the update's hyperparameters: what collection produces and both update paths consume.

A leaf module (numpy only), so `models.ppo` (collection, torch update, dispatch) and `models.numpy_update` (the
numpy update) both import it and not each other. Shapes: T = steps per env in the rollout, n = envs,
d = obs dim, a = action dim, k = truncated steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(kw_only=True)
class PPOConfig:
    """The update's hyperparameters. Those train.py exposes as flags (batch size, epochs, learning rate) have no
    default here: utils.settings.TrainSettings holds them. The others default to Stable-Baselines3's PPO. The
    rollout length is the run's `TrainConfig.n_steps`, not an update setting."""

    batch_size: int
    n_epochs: int
    learning_rate: float
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True


@dataclass
class Rollout:
    """One rollout of T steps in each of n envs, float64, as `models.ppo.collect_rollout` records it."""

    obs: np.ndarray          # (T, n, d) normalized observations the policy saw
    actions: np.ndarray      # (T, n, a) unclipped Gaussian samples
    rewards: np.ndarray      # (T, n) scaled rewards
    dones: np.ndarray        # (T, n) episode ended at this step (terminated or truncated)
    truncated_obs: np.ndarray    # (k, d) normalized final observations of truncated (not terminated) steps
    truncated_index: np.ndarray  # (k, 2) their (t, env) positions, to bootstrap V(final obs) there
    last_obs: np.ndarray     # (n, d) normalized observation after the last step
    episode_returns: list[float]
    episode_lengths: list[int]
