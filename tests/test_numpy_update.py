"""models/numpy_update.py against torch: gradients, grad clipping, Adam, and whole updates.

The reference is the torch path (`ppo_update_torch`, autograd + torch.optim.Adam) run in float64 on copies of
the same networks, each given the advantage targets of its own value net (models/advantages.py, computed once
per update before either path runs), so both sides do the same math in the same precision and differ only by
summation order: gradients agree to ~1e-15 absolute, whole updates (hundreds of Adam steps) to ~1e-14. The
tolerances below (rtol 1e-9, atol 1e-12) leave room for that and still catch any wrong term, sign or routing.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from models.advantages import advantage_targets, value_predictions
from models.networks import GaussianPolicy, ValueNet, linear_layers
from models.numpy_update import (AdamState, FlatParams, NumpyMLP, adam_step, clip_grad_norm, gaussian_log_prob,
                                 minibatch_gradients, normalized_per_minibatch, ppo_update_numpy,
                                 supports_numpy_update)
from models.ppo import clipped_losses, ppo_update, ppo_update_torch
from models.rollout import PPOConfig, Rollout

RTOL, ATOL = 1e-9, 1e-12
CPU = torch.device("cpu")


def make_nets(d: int = 17, a: int = 6, policy_dims=(16, 16), value_dims=(32, 32), seed: int = 0,
              dtype=torch.float64):
    torch.manual_seed(seed)
    policy = GaussianPolicy(d, a, policy_dims, log_std_init=-2.0).to(dtype)
    value = ValueNet(d, value_dims).to(dtype)
    with torch.no_grad():  # non-zero biases and a less tiny head so every term has a visible gradient
        for p in list(policy.parameters()) + list(value.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    return policy, value


def make_optimizer(policy, value, **kwargs):
    return torch.optim.Adam(list(policy.parameters()) + list(value.parameters()), lr=kwargs.pop("lr", 3e-3),
                            eps=1e-5, **kwargs)


def make_rollout(T: int, n: int, d: int, a: int, seed: int) -> Rollout:
    g = np.random.default_rng(seed)
    dones = g.random((T, n)) < 0.02
    truncated_index = np.array([[3, 0], [T // 2, n - 1]], np.int64)
    dones[truncated_index[:, 0], truncated_index[:, 1]] = True
    return Rollout(obs=g.standard_normal((T, n, d)), actions=0.3 * g.standard_normal((T, n, a)),
                   rewards=g.standard_normal((T, n)), dones=dones.astype(np.float64),
                   truncated_obs=g.standard_normal((2, d)), truncated_index=truncated_index,
                   last_obs=g.standard_normal((n, d)), episode_returns=[], episode_lengths=[])


def targets_for(value, rollout, cfg):
    """The advantage targets ppo_update computes once and hands to either path."""
    return advantage_targets(rollout, *value_predictions(value, rollout), cfg.gamma, cfg.gae_lambda)


def all_params(policy, value):
    return list(policy.parameters()) + list(value.parameters())


def numpy_gradients(policy, value, optimizer, batch, cfg):
    obs, actions, old_log_prob, advantages, returns = batch
    if cfg.normalize_advantage:
        advantages = normalized_per_minibatch(advantages, len(advantages))
    batch = (obs, actions, old_log_prob, advantages, returns)
    flat = FlatParams(optimizer)
    stats = minibatch_gradients(NumpyMLP(flat, linear_layers(policy.mean_net)), flat.value(policy.log_std),
                                flat.gradient(policy.log_std), NumpyMLP(flat, linear_layers(value.net)), *batch, cfg)
    return stats, dict(zip(map(id, flat.tensors), flat.unflatten(flat.grad)))


def torch_gradients(policy, value, batch, cfg):
    obs, actions, old_log_prob, advantages, returns = (torch.as_tensor(x) for x in batch)
    for p in all_params(policy, value):
        p.grad = None
    log_prob, entropy = policy.log_prob_and_entropy(obs, actions)
    losses = clipped_losses(log_prob, old_log_prob, advantages, value(obs), returns, entropy, cfg)
    losses["loss"].backward()
    return {k: float(v.detach()) for k, v in losses.items()}


def random_batch(policy, B: int, d: int, a: int, seed: int, ratio_spread: float):
    """obs, actions, old log-probs (current ones plus noise of size ratio_spread), advantages, returns."""
    g = np.random.default_rng(seed)
    obs, actions = g.standard_normal((B, d)), 0.3 * g.standard_normal((B, a))
    with torch.no_grad():
        log_prob, _ = policy.log_prob_and_entropy(torch.as_tensor(obs), torch.as_tensor(actions))
    old_log_prob = log_prob.numpy() + ratio_spread * g.standard_normal(B)
    return obs, actions, old_log_prob, g.standard_normal(B), g.standard_normal(B)


def test_gaussian_log_prob_equals_the_policy_method():
    d, a = 11, 3
    policy, _ = make_nets(d, a)
    g = np.random.default_rng(0)
    obs, actions = g.standard_normal((9, d)), g.standard_normal((9, a))
    with torch.no_grad():
        expected, _ = policy.log_prob_and_entropy(torch.as_tensor(obs), torch.as_tensor(actions))
        mean = policy(torch.as_tensor(obs)).numpy()
    log_std = policy.log_std.detach().numpy()
    np.testing.assert_allclose(gaussian_log_prob(mean, log_std, actions), expected.numpy(), rtol=1e-13)
    log_prob, diff, sq_diff, inv_var = gaussian_log_prob(mean, log_std, actions, return_terms=True)
    np.testing.assert_array_equal(log_prob, gaussian_log_prob(mean, log_std, actions))
    np.testing.assert_array_equal(sq_diff, diff * diff)
    np.testing.assert_allclose(inv_var, np.exp(-2 * log_std))


@pytest.mark.parametrize("policy_dims,value_dims,B,ent_coef,normalize,spread", [
    ((16, 16), (32, 32), 64, 0.0, True, 0.3),     # the benchmark's nets; many ratios clipped on both sides
    ((8,), (4, 4, 4), 17, 0.01, True, 0.05),      # other depths, entropy bonus, mostly unclipped
    ((5, 7, 3), (6,), 9, 0.1, False, 1.0),        # no advantage normalization, almost all clipped
    ((16, 16), (32, 32), 1, 0.0, True, 0.3),      # a one-sample batch: normalization skipped, as torch does
])
def test_minibatch_gradients_equal_autograd(policy_dims, value_dims, B, ent_coef, normalize, spread):
    d, a = 11, 3
    policy, value = make_nets(d, a, policy_dims, value_dims, seed=B)
    optimizer = make_optimizer(policy, value)
    cfg = PPOConfig(batch_size=64, n_epochs=10, learning_rate=3e-4, ent_coef=ent_coef,
                    normalize_advantage=normalize)
    batch = random_batch(policy, B, d, a, seed=B + 1, ratio_spread=spread)
    stats, grads = numpy_gradients(policy, value, optimizer, batch, cfg)
    expected = torch_gradients(policy, value, batch, cfg)
    np.testing.assert_allclose(stats, [expected[k] for k in ("loss", "pg_loss", "vf_loss", "entropy_loss",
                                                             "approx_kl", "clip_fraction")], rtol=RTOL, atol=ATOL)
    for p in all_params(policy, value):
        np.testing.assert_allclose(grads[id(p)], p.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_minibatch_gradients_route_ties_like_torch():
    """At ratio == 1 (first minibatch of an update) both sides of min() tie; torch splits the gradient."""
    d, a = 11, 3
    policy, value = make_nets(d, a)
    optimizer = make_optimizer(policy, value)
    cfg = PPOConfig(batch_size=64, n_epochs=10, learning_rate=3e-4)
    obs, actions, old_log_prob, advantages, returns = random_batch(policy, 32, d, a, seed=3, ratio_spread=0.0)
    advantages[:4] = 0.0  # ties outside the clip range too, where only the unclipped side passes gradient
    old_log_prob[:4] -= 1.0
    batch = (obs, actions, old_log_prob, advantages, returns)
    _, grads = numpy_gradients(policy, value, optimizer, batch, cfg)
    torch_gradients(policy, value, batch, cfg)
    for p in all_params(policy, value):
        np.testing.assert_allclose(grads[id(p)], p.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("N,batch_size", [(100, 16), (64, 64), (65, 16), (10, 1)])
def test_advantages_normalized_per_minibatch_as_torch(N, batch_size):
    """Whole-epoch normalization equals torch's per-minibatch one, partial and one-sample batches included."""
    advantages = np.random.default_rng(N).standard_normal(N) * 3 + 1
    expected = []
    for start in range(0, N, batch_size):
        a = torch.as_tensor(advantages[start:start + batch_size])
        expected.append((a - a.mean()) / (a.std() + 1e-8) if a.numel() > 1 else a)
    np.testing.assert_allclose(normalized_per_minibatch(advantages, batch_size), torch.cat(expected).numpy(),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("scale", [1e-3, 10.0])  # below max_norm (coefficient clamped to 1) and above it
def test_clip_grad_norm_equals_torch(scale):
    g = np.random.default_rng(0)
    grads = [scale * g.standard_normal(shape) for shape in [(16, 17), (16,), (6, 16), (6,)]]
    tensors = [torch.zeros(x.shape, dtype=torch.float64, requires_grad=True) for x in grads]
    for t, x in zip(tensors, grads):
        t.grad = torch.tensor(x)
    expected_norm = float(torch.nn.utils.clip_grad_norm_(tensors, 0.5))
    flat = np.concatenate([x.reshape(-1) for x in grads])
    assert clip_grad_norm(flat, 0.5) == pytest.approx(expected_norm, rel=1e-12)
    np.testing.assert_allclose(flat, np.concatenate([t.grad.numpy().reshape(-1) for t in tensors]), rtol=1e-13)
    if scale > 1:
        assert np.sqrt(flat @ flat) == pytest.approx(0.5, rel=1e-5)


def test_adam_step_equals_torch_with_bias_correction():
    """Several steps from scratch: the first steps are where bias correction matters most."""
    g = np.random.default_rng(1)
    param = torch.tensor(g.standard_normal(50), requires_grad=True)
    optimizer = torch.optim.Adam([param], lr=1e-2, betas=(0.8, 0.95), eps=1e-5)
    values, exp_avg, exp_avg_sq = param.detach().numpy().copy(), np.zeros(50), np.zeros(50)
    for step in range(1, 6):
        grad = g.standard_normal(50) * (1e-3 if step == 1 else 1.0)  # a tiny first gradient: eps matters
        param.grad = torch.tensor(grad)
        optimizer.step()
        adam_step(values, grad, exp_avg, exp_avg_sq, float(step), 1e-2, (0.8, 0.95), 1e-5)
        state = optimizer.state[param]
        np.testing.assert_allclose(values, param.detach().numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(exp_avg, state["exp_avg"].numpy(), rtol=1e-13, atol=1e-18)
        np.testing.assert_allclose(exp_avg_sq, state["exp_avg_sq"].numpy(), rtol=1e-13, atol=1e-20)


def assert_same_training_state(policy_a, value_a, opt_a, policy_b, value_b, opt_b):
    for pa, pb in zip(all_params(policy_a, value_a), all_params(policy_b, value_b)):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), rtol=RTOL, atol=ATOL)
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert float(sa["step"]) == float(sb["step"]) and sa["step"].dtype == sb["step"].dtype
        for key in ("exp_avg", "exp_avg_sq"):
            assert sa[key].dtype == sb[key].dtype and sa[key].shape == sb[key].shape
            np.testing.assert_allclose(sa[key].numpy(), sb[key].numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("T,n,batch_size,n_epochs", [
    (50, 2, 16, 3),   # N = 100: four full batches and a partial one of 4 per epoch
    (64, 1, 64, 2),   # one batch per epoch, no partial one
    (33, 3, 10, 2),   # N = 99: a partial last batch of 9
])
def test_full_update_equals_torch_path(T, n, batch_size, n_epochs):
    """Two consecutive updates (the second reads the Adam state the first wrote) and their stats."""
    d, a = 17, 6
    policy, value = make_nets(d, a)
    policy_t, value_t = copy.deepcopy(policy), copy.deepcopy(value)
    opt, opt_t = make_optimizer(policy, value), make_optimizer(policy_t, value_t)
    cfg = PPOConfig(batch_size=batch_size, n_epochs=n_epochs, learning_rate=3e-4, ent_coef=0.01)
    for k in range(2):
        rollout = make_rollout(T, n, d, a, seed=10 + k)
        rng, rng_t = np.random.default_rng(k), np.random.default_rng(k)
        stats = ppo_update_numpy(policy, value, opt, rollout, targets_for(value, rollout, cfg), rng, cfg)
        stats_t = ppo_update_torch(policy_t, value_t, opt_t, rollout, targets_for(value_t, rollout, cfg), rng_t, cfg,
                                   CPU)
        assert stats.keys() == stats_t.keys() == {"loss", "pg_loss", "vf_loss", "approx_kl", "clip_fraction",
                                                  "explained_variance", "entropy", "std"}
        for key in stats:
            rel = 1e-6 if key == "clip_fraction" else RTOL  # torch takes its mean in float32 (`.float()`)
            assert stats[key] == pytest.approx(stats_t[key], rel=rel, abs=ATOL), key
        assert rng.bit_generator.state == rng_t.bit_generator.state  # same minibatch permutations drawn
        assert_same_training_state(policy, value, opt, policy_t, value_t, opt_t)
    assert float(opt.state[policy.log_std]["step"]) == 2 * n_epochs * -(-(T * n) // batch_size)


def test_float32_modules_keep_torch_formats_and_resume():
    """With the project's float32 nets the update writes float32 params and a loadable torch Adam state."""
    d, a, T, n = 17, 6, 40, 2
    policy, value = make_nets(d, a, dtype=torch.float32)
    opt = make_optimizer(policy, value)
    cfg = PPOConfig(batch_size=32, n_epochs=2, learning_rate=3e-4)
    ppo_update(policy, value, opt, make_rollout(T, n, d, a, 0), np.random.default_rng(0), cfg, CPU)
    for p in all_params(policy, value):
        state = opt.state[p]
        assert p.dtype == state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.float32
        assert state["step"].dtype == torch.float32 and state["step"].dim() == 0 and float(state["step"]) == 6
    # Resume: a fresh optimizer loaded from the state dict continues exactly like the original.
    policy_b, value_b = copy.deepcopy(policy), copy.deepcopy(value)
    opt_b = make_optimizer(policy_b, value_b)
    opt_b.load_state_dict(copy.deepcopy(opt.state_dict()))
    rollout = make_rollout(T, n, d, a, 1)
    ppo_update(policy, value, opt, rollout, np.random.default_rng(1), cfg, CPU)
    ppo_update(policy_b, value_b, opt_b, rollout, np.random.default_rng(1), cfg, CPU)
    for pa, pb in zip(all_params(policy, value), all_params(policy_b, value_b)):
        assert torch.equal(pa, pb)
        assert torch.equal(opt.state[pa]["exp_avg_sq"], opt_b.state[pb]["exp_avg_sq"])


def test_float32_numpy_path_tracks_float32_torch_path():
    """The production comparison: float64 numpy vs the float32 torch reference, one update, loosely."""
    d, a, T, n = 17, 6, 100, 2
    policy, value = make_nets(d, a, dtype=torch.float32)
    policy_t, value_t = copy.deepcopy(policy), copy.deepcopy(value)
    opt, opt_t = make_optimizer(policy, value, lr=3e-4), make_optimizer(policy_t, value_t, lr=3e-4)
    cfg = PPOConfig(batch_size=64, n_epochs=2, learning_rate=3e-4)
    rollout = make_rollout(T, n, d, a, 5)
    ppo_update_numpy(policy, value, opt, rollout, targets_for(value, rollout, cfg), np.random.default_rng(0), cfg)
    ppo_update_torch(policy_t, value_t, opt_t, rollout, targets_for(value_t, rollout, cfg), np.random.default_rng(0),
                     cfg, CPU)
    for p, p_t in zip(all_params(policy, value), all_params(policy_t, value_t)):
        np.testing.assert_allclose(p.detach().numpy(), p_t.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_dispatch_uses_numpy_on_cpu_and_torch_for_unsupported_optimizers():
    d, a = 17, 6
    policy, value = make_nets(d, a)
    assert supports_numpy_update(policy, value, make_optimizer(policy, value))
    assert not supports_numpy_update(policy, value, make_optimizer(policy, value, amsgrad=True))
    assert not supports_numpy_update(policy, value, make_optimizer(policy, value, weight_decay=1e-4))
    assert not supports_numpy_update(policy, value, torch.optim.SGD(all_params(policy, value), lr=0.1))
    assert not supports_numpy_update(policy, value, torch.optim.Adam(list(policy.parameters()), lr=0.1))

    T, n = 30, 2
    cfg = PPOConfig(batch_size=16, n_epochs=1, learning_rate=3e-4)
    rollout = make_rollout(T, n, d, a, 0)
    copies = [copy.deepcopy((policy, value)) for _ in range(2)]
    via_dispatch = ppo_update(*copies[0], make_optimizer(*copies[0]), rollout, np.random.default_rng(0), cfg, CPU)
    direct = ppo_update_numpy(*copies[1], make_optimizer(*copies[1]), rollout, targets_for(copies[1][1], rollout, cfg),
                              np.random.default_rng(0), cfg)
    assert via_dispatch == direct  # bit-identical: the numpy path ran, deterministically


def test_update_leaves_the_rollout_unchanged():
    d, a, T, n = 17, 6, 20, 2
    policy, value = make_nets(d, a)
    rollout = make_rollout(T, n, d, a, 0)
    before = copy.deepcopy(rollout)
    cfg = PPOConfig(batch_size=16, n_epochs=1, learning_rate=3e-4)
    targets = targets_for(value, rollout, cfg)
    ppo_update_numpy(policy, value, make_optimizer(policy, value), rollout, targets, np.random.default_rng(0), cfg)
    ppo_update_torch(policy, value, make_optimizer(policy, value), rollout, targets, np.random.default_rng(0), cfg, CPU)
    for field in ("obs", "actions", "rewards", "dones", "truncated_obs", "last_obs"):
        np.testing.assert_array_equal(getattr(rollout, field), getattr(before, field))


def test_adam_state_reads_fresh_optimizer_as_zeros():
    policy, value = make_nets()
    opt = make_optimizer(policy, value)
    flat = FlatParams(opt)
    state = AdamState.read(opt, flat)
    assert state.step == 0 and not state.exp_avg.any() and state.exp_avg.shape == flat.values.shape
