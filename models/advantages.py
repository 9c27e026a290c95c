"""The targets of one PPO update, computed once before either update path runs, and the statistics it reports.

Targets: the value net's predictions on the rollout, the time-limit bootstrap and GAE, all float64 numpy (what CPU
training uses; the torch path casts the results to its parameters' dtype). Shapes: T = steps per env, n = envs,
N = T * n samples in rollout order (step-major), k = truncated steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.mlp import numpy_mlp

from models.networks import ValueNet, numpy_layers
from models.rollout import Rollout


@dataclass
class AdvantageTargets:
    """What both update paths regress and weight with, per sample (N,), float64."""

    advantages: np.ndarray  # GAE advantages, not yet normalized
    returns: np.ndarray     # advantages + values: the value net's regression targets
    values: np.ndarray      # V(obs) before the update


def value_predictions(value_net: ValueNet, rollout: Rollout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """V of the rollout's observations (T, n), of the observations after its last step (n,) and of the final
    observations of its truncated steps (k,), float64, in the value net's output units (scaled returns)."""
    T, n, d = rollout.obs.shape
    layers = numpy_layers(value_net.net)
    obs = np.asarray(rollout.obs, np.float64).reshape(T * n, d)
    values = numpy_mlp(layers, obs)[:, 0].reshape(T, n)
    last_values = numpy_mlp(layers, np.asarray(rollout.last_obs, np.float64))[:, 0]
    truncated_values = numpy_mlp(layers, np.asarray(rollout.truncated_obs, np.float64))[:, 0]
    return values, last_values, truncated_values


def advantage_targets(rollout: Rollout, values: np.ndarray, last_values: np.ndarray, truncated_values: np.ndarray,
                      gamma: float, gae_lambda: float) -> AdvantageTargets:
    """GAE advantages and returns of the rollout given the value predictions (`value_predictions`), with the value
    of each truncated step's final observation bootstrapped into its reward; `dones[t]` cuts the trace after t."""
    rewards = np.array(rollout.rewards, np.float64)  # a copy: the bootstrap edits it
    if len(rollout.truncated_index):
        # Time-limit truncation is not termination: bootstrap with the value of the final observation (as SB3).
        t_idx, e_idx = rollout.truncated_index[:, 0], rollout.truncated_index[:, 1]
        rewards[t_idx, e_idx] += gamma * truncated_values
    not_done = 1.0 - np.asarray(rollout.dones, np.float64)
    next_values = np.concatenate([values[1:], last_values[None]], axis=0)
    deltas = rewards + gamma * next_values * not_done - values
    decay = gamma * gae_lambda * not_done
    advantages = np.empty_like(rewards)
    last_gae = np.zeros_like(last_values)
    for t in reversed(range(rewards.shape[0])):
        last_gae = deltas[t] + decay[t] * last_gae
        advantages[t] = last_gae
    returns = advantages + values
    return AdvantageTargets(advantages.reshape(-1), returns.reshape(-1), values.reshape(-1))


def update_stats(loss_means: dict[str, float], targets: AdvantageTargets, log_std: np.ndarray) -> dict[str, float]:
    """An update's reported statistics: its mean losses (entropy_loss reported as entropy), the explained variance
    of the returns by the values before the update, and the mean policy std after it (action units)."""
    stats = dict(loss_means)
    stats["explained_variance"] = explained_variance(targets.returns, targets.values)
    stats["entropy"] = -stats.pop("entropy_loss")
    stats["std"] = float(np.exp(log_std).mean())
    return stats


def explained_variance(returns: np.ndarray, values: np.ndarray) -> float:
    """1 - Var(returns - values) / Var(returns), sample variances as Stable-Baselines3 computes it; NaN where it is
    undefined (fewer than two samples, or returns without variance). Undefined is not divergence: it is written
    as null, and numpy is never asked for a variance it would warn about."""
    if len(returns) < 2:
        return float("nan")
    var_returns = np.var(returns, ddof=1)
    if not var_returns > 0:
        return float("nan")
    return float(1 - np.var(returns - values, ddof=1) / var_returns)
