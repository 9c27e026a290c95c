"""PPO: rollouts, generalized advantage estimation and the clipped-surrogate update.

Defaults equal Stable-Baselines3's PPO (`models.rollout.PPOConfig`). Shapes: T = steps per env, n = n_envs,
d = obs dim, a = action dim.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from envs.vector import VecEnv
from models.mlp import numpy_layers, numpy_mlp
from models.networks import GaussianPolicy, ValueNet
from models.normalization import Normalizer
from models.numpy_update import ppo_update_numpy, supports_numpy_update
from models.rollout import PPOConfig, Rollout


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_values: torch.Tensor,
                gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns (both (T, n)) by GAE; `dones[t]` cuts bootstrapping after step t.

    Truncated steps must already carry gamma * V(final obs) in their reward (as SB3 does).
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(last_values)
    for t in reversed(range(T)):
        next_values = last_values if t == T - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * not_done - values[t]
        last_gae = delta + gamma * gae_lambda * not_done * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values


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

    On CPU the float64 numpy implementation runs (models/numpy_update.py: same math, about 5x faster per
    minibatch for tiny MLPs); elsewhere, or for an optimizer it does not cover, the torch reference below.
    """
    if device.type == "cpu" and supports_numpy_update(policy, value_net, optimizer):
        return ppo_update_numpy(policy, value_net, optimizer, rollout, rng, cfg)
    return ppo_update_torch(policy, value_net, optimizer, rollout, rng, cfg, device)


def ppo_update_torch(policy: GaussianPolicy, value_net: ValueNet, optimizer: torch.optim.Optimizer, rollout: Rollout,
                     rng: np.random.Generator, cfg: PPOConfig, device: torch.device) -> dict[str, float]:
    """ppo_update with torch autograd and optimizer, in the parameters' dtype (the reference, and the CUDA path)."""
    T, n, d = rollout.obs.shape
    dtype = next(policy.parameters()).dtype
    as_tensor = lambda x: torch.as_tensor(x, dtype=dtype, device=device)  # noqa: E731
    obs, actions = as_tensor(rollout.obs.reshape(T * n, d)), as_tensor(rollout.actions.reshape(T * n, -1))
    # A copy: bootstrapping below edits the rewards, and as_tensor would share a float64 rollout's memory.
    rewards, dones = torch.tensor(rollout.rewards, dtype=dtype, device=device), as_tensor(rollout.dones)
    with torch.no_grad():
        values = value_net(obs).reshape(T, n)
        last_values = value_net(as_tensor(rollout.last_obs))
        if len(rollout.truncated_index):
            # Time-limit truncation is not termination: bootstrap with the value of the final observation.
            t_idx, e_idx = (torch.as_tensor(rollout.truncated_index[:, k], device=device) for k in (0, 1))
            rewards[t_idx, e_idx] += cfg.gamma * value_net(as_tensor(rollout.truncated_obs))
        advantages, returns = compute_gae(rewards, values, dones, last_values, cfg.gamma, cfg.gae_lambda)
        old_log_prob, _ = policy.log_prob_and_entropy(obs, actions)
    advantages, returns = advantages.reshape(-1), returns.reshape(-1)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    totals: dict[str, torch.Tensor] = {}  # summed on the device: no host sync per minibatch
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
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            for key, val in losses.items():
                totals[key] = totals[key] + val.detach() if key in totals else val.detach()
            n_batches += 1
    stats = {key: float(val) / n_batches for key, val in totals.items()}
    with torch.no_grad():
        var_returns = torch.var(returns)
        stats["explained_variance"] = float(1 - torch.var(returns - values.reshape(-1)) / var_returns) \
            if var_returns > 0 else float("nan")
        stats["entropy"] = -stats.pop("entropy_loss")
        stats["std"] = float(torch.exp(policy.log_std).mean())
    return stats
