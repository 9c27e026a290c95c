"""Rollout bookkeeping by hand: a toy env with known rewards, terminations and time-limit truncations.

Env 0 terminates at its 3rd step, env 1 is cut by a 4-step time limit; rewards are 1, 2, 3, ... within an
episode. The value net is the constant c, so every advantage follows from a few lines of arithmetic. Checked:
what the rollout records (dones, truncated positions and final observations, episode returns and lengths, the
observation after the last step), the GAE advantages with the bootstrap at the truncation and none at the
termination, and what both update paths (numpy and torch) regress on (their first-minibatch losses).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs.vector import VecEnv
from models.advantages import advantage_targets, value_predictions
from models.networks import GaussianPolicy, ValueNet
from models.normalization import Normalizer
from models.numpy_update import ppo_update_numpy
from models.ppo import collect_rollout, ppo_update_torch
from models.rollout import PPOConfig

ENV_ID = "RolloutBookkeeping-v0"
TIME_LIMIT = 4
TERMINATE_AT = 3
T, N_ENVS = 6, 2
GAMMA, LAMBDA, C = 0.9, 0.8, 0.5


class CountingEnv(gym.Env):
    """obs = [steps so far in the episode, 0]; reward k at the k-th step; terminates at TERMINATE_AT when reset with an
    even seed (the first env of a VecEnv seeded 0), otherwise only the time limit ends an episode."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        self.k, self.terminates = 0, False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.terminates = seed % 2 == 0
        self.k = 0
        return np.array([0.0, 0.0]), {}

    def step(self, action):
        self.k += 1
        return np.array([float(self.k), 0.0]), float(self.k), self.terminates and self.k == TERMINATE_AT, False, {}


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=CountingEnv, max_episode_steps=TIME_LIMIT)

# By hand: env 0 (terminating) steps k = 1 2 3 | 1 2 3, env 1 (time limit 4) steps k = 1 2 3 4 | 1 2.
TERMINATED = {(2, 0), (5, 0)}
TRUNCATED = {(3, 1)}


@pytest.fixture
def rollout():
    torch.manual_seed(0)
    venv = VecEnv(ENV_ID, N_ENVS, seed=0)
    normalizer = Normalizer(obs_dim=2, n_envs=N_ENVS, gamma=GAMMA, mode="off")
    policy = GaussianPolicy(2, 1, (4,), log_std_init=-1.0)
    out = collect_rollout(venv, policy, normalizer, np.random.default_rng(0), T, normalizer.normalize_obs(venv.obs))
    venv.close()
    return out


def constant_value_net(c: float) -> ValueNet:
    net = ValueNet(2, (4,))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.net[-1].bias.fill_(c)
    return net


def test_the_rollout_records_terminations_truncations_and_episodes(rollout):
    done = {(t, i) for t in range(T) for i in range(N_ENVS) if rollout.dones[t, i]}
    assert done == TERMINATED | TRUNCATED
    assert [tuple(x) for x in rollout.truncated_index] == sorted(TRUNCATED)
    np.testing.assert_array_equal(rollout.truncated_obs, [[4.0, 0.0]])   # the final observation, not the reset one
    assert rollout.episode_returns == [6.0, 10.0, 6.0] and rollout.episode_lengths == [3, 4, 3]
    # the observation each action was taken in: a finished episode restarts at 0 on the next step
    np.testing.assert_array_equal(rollout.obs[:, :, 0], [[0, 0], [1, 1], [2, 2], [0, 3], [1, 0], [2, 1]])
    np.testing.assert_array_equal(rollout.last_obs, [[0.0, 0.0], [2.0, 0.0]])


def hand_advantages(rewards: np.ndarray) -> np.ndarray:
    """GAE with V = C everywhere, written out per env: bootstrap V(final obs) = C at the truncation, cut the trace
    at every done, no bootstrap at a termination."""
    adv = np.zeros((T, N_ENVS))
    for i in range(N_ENVS):
        gae = 0.0
        for t in reversed(range(T)):
            r = rewards[t, i] + (GAMMA * C if (t, i) in TRUNCATED else 0.0)
            alive = 0.0 if (t, i) in TERMINATED | TRUNCATED else 1.0
            delta = r + GAMMA * C * alive - C
            gae = delta + GAMMA * LAMBDA * alive * gae
            adv[t, i] = gae
    return adv


def test_advantages_bootstrap_truncation_and_stop_at_termination(rollout):
    targets = advantage_targets(rollout, *value_predictions(constant_value_net(C), rollout), GAMMA, LAMBDA)
    expected = hand_advantages(rollout.rewards)
    np.testing.assert_allclose(targets.advantages, expected.reshape(-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(targets.returns, expected.reshape(-1) + C, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(targets.values, np.full(T * N_ENVS, C), rtol=1e-6)


@pytest.mark.parametrize("path", ["numpy", "torch"])
def test_both_update_paths_regress_on_the_hand_targets(rollout, path):
    """One epoch, one minibatch of the whole rollout, advantages not normalized: before any step the ratio is 1, so
    pg_loss = -mean(A) and vf_loss = mean((R - V)^2) = mean(A^2) with the hand advantages."""
    torch.manual_seed(1)
    policy, value_net = GaussianPolicy(2, 1, (4,), log_std_init=-1.0), constant_value_net(C)
    optimizer = torch.optim.Adam([*policy.parameters(), *value_net.parameters()], lr=1e-3, eps=1e-5)
    cfg = PPOConfig(batch_size=T * N_ENVS, n_epochs=1, learning_rate=1e-3, gamma=GAMMA, gae_lambda=LAMBDA,
                    normalize_advantage=False)
    targets = advantage_targets(rollout, *value_predictions(value_net, rollout), GAMMA, LAMBDA)
    rng = np.random.default_rng(0)
    if path == "numpy":
        stats = ppo_update_numpy(policy, value_net, optimizer, rollout, targets, rng, cfg)
    else:
        stats = ppo_update_torch(policy, value_net, optimizer, rollout, targets, rng, cfg, torch.device("cpu"))
    adv = hand_advantages(rollout.rewards).reshape(-1)
    assert stats["pg_loss"] == pytest.approx(-adv.mean(), rel=1e-5, abs=1e-6)
    assert stats["vf_loss"] == pytest.approx((adv ** 2).mean(), rel=1e-5)
