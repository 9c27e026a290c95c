"""PPO: rollouts, the clipped-surrogate losses and the update (advantage targets in models/advantages.py).

Defaults equal Stable-Baselines3's PPO (`models.rollout.PPOConfig`). Shapes: T = steps per env, n = n_envs,
d = obs dim, a = action dim.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from envs.vector import VecEnv
from models.advantages import AdvantageTargets, advantage_targets, update_stats, value_predictions
from models.divergence import check_finite_step, check_finite_weights
from models.mlp import numpy_mlp
from models.networks import GaussianPolicy, ValueNet, numpy_layers
from models.normalization import Normalizer
from models.numpy_update import ppo_update_numpy, supports_numpy_update
from models.rollout import PPOConfig, Rollout


def clipped_losses(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                   values: torch.Tensor, returns: torch.Tensor, entropy: torch.Tensor,
                   cfg: PPOConfig) -> dict[str, torch.Tensor]:
    """PPO's clipped surrogate, value and entropy losses on one minibatch, plus approx KL and clip fraction."""
    if cfg.normalize_advantage and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    surrogate = torch.min(advantages * ratio, advantages * torch.clamp(ratio, 1 - cfg.clip_range, 1 + cfg.clip_range))
    pg_loss = -surrogate.mean()
    vf_loss = torch.mean((returns - values) ** 2)
    entropy_loss = -entropy.mean()
    loss = pg_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * vf_loss
    with torch.no_grad():
        approx_kl = torch.mean((ratio - 1) - log_ratio)
        clip_fraction = torch.mean((torch.abs(ratio - 1) > cfg.clip_range).float())
    return {"loss": loss, "pg_loss": pg_loss, "vf_loss": vf_loss, "entropy_loss": entropy_loss,
            "approx_kl": approx_kl, "clip_fraction": clip_fraction}


def collect_rollout(venv: VecEnv, policy: GaussianPolicy, normalizer: Normalizer, rng: np.random.Generator,
                    n_steps: int, obs_norm: np.ndarray) -> Rollout:
    """Run the stochastic policy for n_steps in every env; `obs_norm` is the current normalized observation."""
    n, d = obs_norm.shape
    layers = numpy_layers(policy.mean_net)
    std = np.exp(policy.log_std.detach().cpu().double().numpy())
    low, high = venv.action_space.low.astype(np.float64), venv.action_space.high.astype(np.float64)
    a = std.shape[0]
    # All the exploration noise in one draw: the same numbers, in the same order, as one (n, a) draw per step.
    noise = std * rng.standard_normal((n_steps, n, a))
    obs_buf = np.empty((n_steps, n, d)); act_buf = np.empty((n_steps, n, a))
    rew_buf = np.empty((n_steps, n)); done_buf = np.empty((n_steps, n))
    trunc_obs, trunc_idx, ep_returns, ep_lengths = [], [], [], []
    for t in range(n_steps):
        actions = numpy_mlp(layers, obs_norm) + noise[t]
        step = venv.step(np.minimum(np.maximum(actions, low), high))
        done = step.terminated | step.truncated
        normalizer.observe(step.obs)
        next_obs_norm = normalizer.normalize_obs(step.obs)
        if step.truncated.any():
            for i in np.flatnonzero(step.truncated & ~step.terminated):
                trunc_obs.append(normalizer.normalize_obs(step.final_obs[i]))
                trunc_idx.append((t, i))
        obs_buf[t], act_buf[t] = obs_norm, actions
        rew_buf[t] = normalizer.scale_rewards(step.rewards, done)
        done_buf[t] = done
        if step.episode_returns:
            ep_returns += step.episode_returns
            ep_lengths += step.episode_lengths
        obs_norm = next_obs_norm
    return Rollout(obs_buf, act_buf, rew_buf, done_buf,
                   np.asarray(trunc_obs, np.float64).reshape(-1, d), np.asarray(trunc_idx, np.int64).reshape(-1, 2),
                   obs_norm, ep_returns, ep_lengths)


def ppo_update(policy: GaussianPolicy, value_net: ValueNet, optimizer: torch.optim.Optimizer, rollout: Rollout,
               rng: np.random.Generator, cfg: PPOConfig, device: torch.device) -> dict[str, float]:
    """n_epochs of minibatch clipped-PPO updates on one rollout; returns mean losses and diagnostics.

    The advantage targets are computed once, in float64 numpy (models/advantages.py). On CPU the float64 numpy
    update runs (models/numpy_update.py: same math, about 5x faster per minibatch for tiny MLPs); elsewhere, or
    for an optimizer it does not cover, the torch reference below.
    """
    targets = advantage_targets(rollout, *value_predictions(value_net, rollout), cfg.gamma, cfg.gae_lambda)
    if device.type == "cpu" and supports_numpy_update(policy, value_net, optimizer):
        return ppo_update_numpy(policy, value_net, optimizer, rollout, targets, rng, cfg)
    return ppo_update_torch(policy, value_net, optimizer, rollout, targets, rng, cfg, device)


def ppo_update_torch(policy: GaussianPolicy, value_net: ValueNet, optimizer: torch.optim.Optimizer, rollout: Rollout,
                     targets: AdvantageTargets, rng: np.random.Generator, cfg: PPOConfig,
                     device: torch.device) -> dict[str, float]:
    """ppo_update with torch autograd and optimizer, in the parameters' dtype (the reference, and the CUDA path).

    Raises models.divergence.TrainingDiverged if a loss or gradient norm of the update, or a weight after it, is
    not finite (looked at once, after the update: a per-step look would cost a device sync per minibatch)."""
    T, n, d = rollout.obs.shape
    dtype = next(policy.parameters()).dtype
    as_tensor = lambda x: torch.as_tensor(x, dtype=dtype, device=device)  # noqa: E731
    obs, actions = as_tensor(rollout.obs.reshape(T * n, d)), as_tensor(rollout.actions.reshape(T * n, -1))
    advantages, returns = as_tensor(targets.advantages), as_tensor(targets.returns)
    with torch.no_grad():
        old_log_prob, _ = policy.log_prob_and_entropy(obs, actions)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    totals: dict[str, torch.Tensor] = {}  # summed on the device: no host sync per minibatch
    grad_norm_total = torch.zeros((), dtype=dtype, device=device)  # a non-finite step norm makes it non-finite
    n_batches = 0
    for _ in range(cfg.n_epochs):
        order = torch.as_tensor(rng.permutation(T * n), device=device)
        for start in range(0, T * n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            log_prob, entropy = policy.log_prob_and_entropy(obs[idx], actions[idx])
            losses = clipped_losses(log_prob, old_log_prob[idx], advantages[idx], value_net(obs[idx]),
                                    returns[idx], entropy, cfg)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            grad_norm_total = grad_norm_total + nn.utils.clip_grad_norm_(params, cfg.max_grad_norm).detach()
            optimizer.step()
            for key, val in losses.items():
                totals[key] = totals[key] + val.detach() if key in totals else val.detach()
            n_batches += 1
    check_finite_step(float(totals["loss"]), float(grad_norm_total))
    check_finite_weights(policy, value_net)
    loss_means = {key: float(val) / n_batches for key, val in totals.items()}
    return update_stats(loss_means, targets, policy.log_std.detach().cpu().double().numpy())
