"""models/advantages.py: the time-limit bootstrap and GAE against values computed by hand, and the update stats."""
import math

import numpy as np
import pytest
import torch

from models.advantages import (AdvantageTargets, advantage_targets, explained_variance, update_stats,
                               value_predictions)
from models.mlp import numpy_mlp
from models.networks import ValueNet, numpy_layers
from models.rollout import Rollout


def rollout_of(rewards, dones, truncated_index=(), d: int = 1) -> Rollout:
    """A rollout with the given (T, n) rewards and dones; observations do not matter to GAE itself."""
    rewards, dones = np.asarray(rewards, np.float64), np.asarray(dones, np.float64)
    T, n = rewards.shape
    k = len(truncated_index)
    return Rollout(obs=np.zeros((T, n, d)), actions=np.zeros((T, n, 1)), rewards=rewards, dones=dones,
                   truncated_obs=np.zeros((k, d)), truncated_index=np.asarray(truncated_index, np.int64).reshape(-1, 2),
                   last_obs=np.zeros((n, d)), episode_returns=[], episode_lengths=[])


def test_gae_matches_hand_computation():
    gamma, lam = 0.9, 0.8
    rollout = rollout_of([[1.0], [2.0], [3.0]], [[0.0], [1.0], [0.0]])  # the episode ends after step 1
    values = np.array([[0.5], [1.0], [1.5]])
    targets = advantage_targets(rollout, values, np.array([2.0]), np.zeros(0), gamma, lam)
    d2 = 3.0 + 0.9 * 2.0 - 1.5          # bootstraps from last value
    d1 = 2.0 + 0.0 - 1.0                # done: no bootstrap
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    a2 = d2
    a1 = d1                              # done cuts the trace
    a0 = d0 + 0.9 * 0.8 * a1
    assert targets.advantages.tolist() == pytest.approx([a0, a1, a2])
    assert targets.returns.tolist() == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 1.5])
    assert targets.values.tolist() == [0.5, 1.0, 1.5]


def test_gae_two_envs_are_independent():
    rollout = rollout_of([[1.0, 0.0], [1.0, 0.0]], np.zeros((2, 2)))
    targets = advantage_targets(rollout, np.zeros((2, 2)), np.zeros(2), np.zeros(0), 0.5, 1.0)
    adv = targets.advantages.reshape(2, 2)  # step-major, like the rollout
    assert adv[:, 0].tolist() == pytest.approx([1.5, 1.0])
    assert adv[:, 1].tolist() == [0.0, 0.0]


def test_truncated_step_bootstraps_the_final_observations_value():
    """A time-limit truncation ends the trace like termination but adds gamma * V(final obs) to its reward."""
    gamma, lam = 0.9, 0.8
    rollout = rollout_of([[1.0], [2.0], [3.0]], [[0.0], [1.0], [0.0]], truncated_index=[(1, 0)])
    values = np.array([[0.5], [1.0], [1.5]])
    rewards_before = rollout.rewards.copy()
    targets = advantage_targets(rollout, values, np.array([2.0]), np.array([4.0]), gamma, lam)
    a2 = 3.0 + 0.9 * 2.0 - 1.5
    a1 = 2.0 + 0.9 * 4.0 - 1.0           # truncated: V(final obs) = 4 bootstrapped, the trace still cut
    a0 = 1.0 + 0.9 * 1.0 - 0.5 + 0.9 * 0.8 * a1
    assert targets.advantages.tolist() == pytest.approx([a0, a1, a2])
    np.testing.assert_array_equal(rollout.rewards, rewards_before)  # the rollout itself is left unchanged


def test_value_predictions_are_the_value_nets_outputs():
    torch.manual_seed(0)
    value = ValueNet(3, (4,))
    g = np.random.default_rng(0)
    rollout = rollout_of(np.zeros((5, 2)), np.zeros((5, 2)), truncated_index=[(2, 1)], d=3)
    rollout.obs, rollout.last_obs, rollout.truncated_obs = (g.standard_normal(s) for s in ((5, 2, 3), (2, 3), (1, 3)))
    values, last_values, truncated_values = value_predictions(value, rollout)
    with torch.no_grad():
        expected = value(torch.as_tensor(rollout.obs, dtype=torch.float32)).double().numpy()
    assert values.shape == (5, 2) and last_values.shape == (2,) and truncated_values.shape == (1,)
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)
    layers = numpy_layers(value.net)
    np.testing.assert_array_equal(last_values, numpy_mlp(layers, rollout.last_obs)[:, 0])
    np.testing.assert_array_equal(truncated_values, numpy_mlp(layers, rollout.truncated_obs)[:, 0])


def test_update_stats_report_entropy_explained_variance_and_std():
    targets = AdvantageTargets(advantages=np.zeros(4), returns=np.array([1.0, 2.0, 3.0, 4.0]),
                               values=np.array([1.0, 2.0, 3.0, 3.0]))
    stats = update_stats({"loss": 1.0, "entropy_loss": -0.25}, targets, np.log(np.array([0.5, 2.0])))
    assert list(stats) == ["loss", "explained_variance", "entropy", "std"]
    assert stats["entropy"] == 0.25 and stats["std"] == pytest.approx(1.25)
    expected = 1 - np.var([0, 0, 0, 1.0], ddof=1) / np.var([1, 2, 3, 4.0], ddof=1)
    assert stats["explained_variance"] == pytest.approx(expected)
    constant = AdvantageTargets(np.zeros(3), np.ones(3), np.zeros(3))
    assert math.isnan(update_stats({"entropy_loss": 0.0}, constant, np.zeros(1))["explained_variance"])


@pytest.mark.parametrize("returns, values", [([2.5], [1.0]), ([], []), ([1.0, 1.0, 1.0], [0.0, 1.0, 2.0])])
def test_explained_variance_is_nan_where_undefined_without_a_numpy_warning(returns, values):
    """One sample, none, or returns without variance: undefined (written as null), and numpy is never asked for a
    variance it would warn about ('Degrees of freedom <= 0' printed on every one-sample iteration)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(explained_variance(np.asarray(returns, np.float64), np.asarray(values, np.float64)))
    assert explained_variance(np.array([1.0, 3.0]), np.array([1.0, 3.0])) == 1.0
