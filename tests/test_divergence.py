"""models/divergence.py: a non-finite loss, gradient or weight stops training, in both update paths and in the Trainer.

The divergences here are real, not injected: an absurd learning rate (1e37, 1e308; train.py allows at most 10)
drives Adam's very first steps out of float range, and each case lands on a different check. The loop and the
CLI (nothing of the diverged iteration is written; one line, exit 1) are tested in test_train_loop.py and
test_train_cli.py.
"""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch

from models.divergence import MAX_ABS_LOG_STD, TrainingDiverged, check_finite_step, check_finite_weights
from models.numpy_update import ppo_update_numpy
from models.ppo import ppo_update, ppo_update_torch
from models.rollout import PPOConfig, Rollout
from tests.helpers import small_trainer
from tests.test_numpy_update import make_nets, make_optimizer, make_rollout, targets_for
from utils.errors import RunFailed

CPU = torch.device("cpu")


@pytest.mark.parametrize("loss, grad_norm, step, expected", [
    (math.nan, 1.0, 3, "non-finite loss at minibatch step 3 of the update"),
    (math.inf, math.nan, 3, "non-finite loss at minibatch step 3 of the update"),  # the loss is named first
    (1.0, math.inf, 3, "non-finite gradient at minibatch step 3 of the update"),
    (1.0, math.nan, None, "non-finite gradient during the update"),
])
def test_check_finite_step_names_the_first_non_finite_value(loss, grad_norm, step, expected):
    with pytest.raises(TrainingDiverged) as info:
        check_finite_step(loss, grad_norm, step)
    assert str(info.value) == f"training diverged ({expected})" and info.value.what == expected


def test_check_finite_step_passes_finite_values():
    check_finite_step(1e300, 0.0, 1)  # large is not divergence; raising here would fail the test


@pytest.mark.parametrize("part, value, expected", [
    ("policy", math.nan, "non-finite policy weights after the update"),
    ("log_std", -math.inf, "non-finite policy log-std after the update"),
    ("value", math.inf, "non-finite value weights after the update"),
    ("log_std", 400.0, "policy log-std beyond ±355 after the update, where its variance overflows float64"),
    ("log_std", -400.0, "policy log-std beyond ±355 after the update, where its variance overflows float64"),
])
def test_check_finite_weights_names_the_part(part, value, expected):
    policy, value_net = make_nets(d=3, a=2, policy_dims=(8,), value_dims=(8,))
    check_finite_weights(policy, value_net)  # finite nets pass
    target = {"policy": policy.mean_net[2].bias, "log_std": policy.log_std, "value": value_net.net[0].weight}[part]
    with torch.no_grad():
        target.view(-1)[-1] = value
    with pytest.raises(TrainingDiverged, match=f"^training diverged \\({expected}\\)$"):
        check_finite_weights(policy, value_net)


def test_the_log_std_bound_is_where_float64_variance_overflows():
    assert math.isfinite(math.exp(2 * (MAX_ABS_LOG_STD - 1e-9))) and round(MAX_ABS_LOG_STD, 2) == 354.89
    with pytest.raises(OverflowError):
        math.exp(2 * (MAX_ABS_LOG_STD + 1e-9))


def test_training_diverged_is_a_run_failure_with_its_iteration_and_advice():
    err = TrainingDiverged("non-finite loss during the update").at_iteration(3).with_advice("lower it")
    assert isinstance(err, RunFailed) and err.iteration == 3
    assert str(err) == "training diverged at iteration 3 (non-finite loss during the update); lower it"


def _update(path: str, policy, value, optimizer, rollout, cfg):
    targets = targets_for(value, rollout, cfg)
    if path == "numpy":
        return ppo_update_numpy(policy, value, optimizer, rollout, targets, np.random.default_rng(0), cfg)
    return ppo_update_torch(policy, value, optimizer, rollout, targets, np.random.default_rng(0), cfg, CPU)


# (path, parameter dtype, learning rate, epochs) -> the check that fires first; one minibatch of 32 per epoch
DIVERGING_UPDATES = [
    ("numpy", torch.float32, 1e37, 20, "non-finite gradient at minibatch step 2 of the update"),
    ("numpy", torch.float64, 1e308, 2, "non-finite loss at minibatch step 2 of the update"),
    ("numpy", torch.float64, 1e308, 1, "non-finite policy weights after the update"),
    ("numpy", torch.float32, 1e37, 1, "policy log-std beyond ±355 after the update, where its variance overflows"),
    ("torch", torch.float32, 1e37, 20, "non-finite loss during the update"),
    ("torch", torch.float64, 1e308, 1, "non-finite policy weights after the update"),
    ("torch", torch.float64, 1e37, 1, "policy log-std beyond ±355 after the update, where its variance overflows"),
]


@pytest.mark.parametrize("path, dtype, lr, n_epochs, expected", DIVERGING_UPDATES)
def test_both_update_paths_stop_at_the_first_non_finite_value(path, dtype, lr, n_epochs, expected):
    policy, value = make_nets(d=3, a=2, policy_dims=(8,), value_dims=(8,), dtype=dtype)
    cfg = PPOConfig(batch_size=32, n_epochs=n_epochs, learning_rate=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings would print before the one-line error
        with pytest.raises(TrainingDiverged) as info:
            _update(path, policy, value, make_optimizer(policy, value, lr=lr), make_rollout(16, 2, 3, 2, seed=0), cfg)
    assert info.value.what.startswith(expected) and info.value.iteration is None


def test_the_numpy_path_stops_before_applying_a_non_finite_gradient():
    """The torch modules and Adam's state are those from before the update: nothing of it was written back."""
    policy, value = make_nets(d=3, a=2, policy_dims=(8,), value_dims=(8,), dtype=torch.float32)
    optimizer = make_optimizer(policy, value, lr=3e-4)
    cfg = PPOConfig(batch_size=32, n_epochs=1, learning_rate=3e-4)
    _update("numpy", policy, value, optimizer, make_rollout(16, 2, 3, 2, seed=1), cfg)  # Adam has state now
    before = copy.deepcopy((policy.state_dict(), value.state_dict(), optimizer.state_dict()))
    for group in optimizer.param_groups:
        group["lr"] = 1e37
    with pytest.raises(TrainingDiverged, match="non-finite gradient at minibatch step 2"):
        _update("numpy", policy, value, optimizer, make_rollout(16, 2, 3, 2, seed=0),
                PPOConfig(batch_size=32, n_epochs=20, learning_rate=1e37))
    after = (policy.state_dict(), value.state_dict(), optimizer.state_dict())
    for old, new in zip(before[:2], after[:2]):
        assert all(torch.equal(old[k], new[k]) for k in old)
    assert all(torch.equal(before[2]["state"][i][key], after[2]["state"][i][key])
               for i in before[2]["state"] for key in ("step", "exp_avg", "exp_avg_sq"))


@pytest.mark.parametrize("device_path", ["numpy", "torch"])
def test_a_one_sample_update_is_not_divergence_and_prints_no_warning(device_path):
    """Explained variance of one sample is undefined (NaN, written as null): not a divergence, and no numpy
    'Degrees of freedom <= 0' warning on the way."""
    policy, value = make_nets(d=3, a=2, policy_dims=(8,), value_dims=(8,))
    cfg = PPOConfig(batch_size=1, n_epochs=1, learning_rate=3e-4)
    g = np.random.default_rng(0)
    one_step = Rollout(obs=g.standard_normal((1, 1, 3)), actions=g.standard_normal((1, 1, 2)), rewards=np.ones((1, 1)),
                       dones=np.zeros((1, 1)), truncated_obs=np.zeros((0, 3)), truncated_index=np.zeros((0, 2), np.int64),
                       last_obs=g.standard_normal((1, 3)), episode_returns=[], episode_lengths=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = _update(device_path, policy, value, make_optimizer(policy, value), one_step, cfg)
    assert math.isnan(stats["explained_variance"]) and math.isfinite(stats["loss"])


def test_dispatch_checks_what_either_path_checks():
    policy, value = make_nets(d=3, a=2, policy_dims=(8,), value_dims=(8,), dtype=torch.float64)
    optimizer = make_optimizer(policy, value, lr=1e308)
    rollout, cfg = make_rollout(16, 2, 3, 2, seed=0), PPOConfig(batch_size=32, n_epochs=2, learning_rate=1e308)
    with pytest.raises(TrainingDiverged, match="non-finite loss at minibatch step 2 of the update"):
        ppo_update(policy, value, optimizer, rollout, np.random.default_rng(0), cfg, CPU)


def test_the_trainer_names_the_iteration_whose_update_diverged():
    trainer = small_trainer(total_timesteps=384)  # 3 iterations
    try:
        trainer.warmup()
        trainer.train_iteration()
        for group in trainer.optimizer.param_groups:
            group["lr"] = 1e37
        with pytest.raises(TrainingDiverged) as info:
            trainer.train_iteration()
    finally:
        trainer.close()
    assert info.value.iteration == 2 and str(info.value).startswith("training diverged at iteration 2 (")
    assert trainer.iteration == 1  # the diverged iteration is not counted
