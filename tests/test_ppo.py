"""The clipped PPO loss against values computed by hand, the Gaussian policy, dims parsing (GAE: test_advantages.py)."""
import math

import numpy as np
import pytest
import torch

from models.networks import GaussianPolicy, parse_dims
from models.ppo import clipped_losses
from models.rollout import PPOConfig
from utils.errors import UserError


def test_clipped_loss_matches_hand_computation():
    cfg = PPOConfig(batch_size=64, n_epochs=10, learning_rate=3e-4, clip_range=0.2, vf_coef=0.5, ent_coef=0.01,
                    normalize_advantage=False)
    old = torch.tensor([0.0, 0.0, 0.0])
    new = torch.log(torch.tensor([1.5, 0.5, 1.1]))  # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([1.0, -2.0, 3.0])
    values, returns = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.5, 2.0, 2.0])
    entropy = torch.tensor([0.3, 0.3, 0.3])
    out = clipped_losses(new, old, adv, values, returns, entropy, cfg)
    # min(r*A, clip(r)*A): 1.2*1 = 1.2; min(-1.0, -1.6) = -1.6; min(3.3, 3.3) = 3.3
    pg = -(1.2 - 1.6 + 3.3) / 3
    vf = (0.25 + 0 + 1) / 3
    assert float(out["pg_loss"]) == pytest.approx(pg)
    assert float(out["vf_loss"]) == pytest.approx(vf)
    assert float(out["loss"]) == pytest.approx(pg + 0.5 * vf - 0.01 * 0.3)
    assert float(out["clip_fraction"]) == pytest.approx(2 / 3)
    expected_kl = np.mean([r - 1 - math.log(r) for r in (1.5, 0.5, 1.1)])
    assert float(out["approx_kl"]) == pytest.approx(expected_kl, rel=1e-5)


def test_advantage_normalization_uses_minibatch_statistics():
    """Advantages [1, 3] normalize to -+1/sqrt(2) (mean 2, Bessel std sqrt 2); with ratios e^0.1 and e^-0.1 (inside
    the clip range) the surrogate is -mean(A_norm * ratio), which a wrong mean, std or no normalization changes."""
    cfg = PPOConfig(batch_size=64, n_epochs=10, learning_rate=3e-4, normalize_advantage=True)
    adv = torch.tensor([1.0, 3.0], dtype=torch.float64)
    zeros = torch.zeros(2, dtype=torch.float64)
    log_prob = torch.tensor([0.1, -0.1], dtype=torch.float64)
    out = clipped_losses(log_prob, zeros, adv, zeros, zeros, zeros, cfg)
    expected = -0.5 * (-math.exp(0.1) + math.exp(-0.1)) / math.sqrt(2)
    assert float(out["pg_loss"]) == pytest.approx(expected, rel=1e-7)
    plain = clipped_losses(log_prob, zeros, adv, zeros, zeros, zeros,
                           PPOConfig(batch_size=64, n_epochs=10, learning_rate=3e-4, normalize_advantage=False))
    assert float(plain["pg_loss"]) == pytest.approx(-0.5 * (math.exp(0.1) + 3 * math.exp(-0.1)), rel=1e-7)


def test_gaussian_log_prob_and_entropy_match_torch_distributions():
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, (4, 4), log_std_init=-1.0)
    obs, actions = torch.randn(5, 3), torch.randn(5, 2)
    log_prob, entropy = policy.log_prob_and_entropy(obs, actions)
    dist = torch.distributions.Normal(policy(obs), torch.exp(policy.log_std))
    assert torch.allclose(log_prob, dist.log_prob(actions).sum(-1), atol=1e-5)
    assert torch.allclose(entropy, dist.entropy().sum(-1), atol=1e-5)


def test_train_config_hands_its_update_settings_to_ppo_config():
    """TrainConfig hands its update settings to PPOConfig; the rollout length stays a run setting."""
    from dataclasses import fields

    from tests.helpers import small_config

    cfg = small_config(batch_size=50, n_steps=100, n_epochs=3, learning_rate=1e-3)
    assert "n_steps" not in {f.name for f in fields(PPOConfig)}
    assert cfg.ppo() == PPOConfig(batch_size=50, n_epochs=3, learning_rate=1e-3) and cfg.n_steps == 100


@pytest.mark.parametrize("text,expected", [("c16,16", (16, 16)), ("16,16", (16, 16)), ("c64", (64,)),
                                           ("C8,4,2", (8, 4, 2))])
def test_parse_dims(text, expected):
    assert parse_dims(text) == expected


@pytest.mark.parametrize("text", ["c16,,x", "c0", "", "c", "16,-2", "abc", "c\u00b2,8", "c10000000,8", "c16,\u0663"])
def test_parse_dims_rejects(text):
    with pytest.raises(UserError, match="--policy_dims"):
        parse_dims(text)
