"""models/evaluation.py: in-training evaluation (evaluate_policy) steps its episodes together, with the returns of
episodes evaluated one at a time."""
from __future__ import annotations

import numpy as np
import pytest

from envs.resolve import make_env
from models.mlp import numpy_mlp
from models.normalization import normalize_with
from models.evaluation import evaluate_policy


def one_episode_return(env_id: str, layers: list, mean: np.ndarray, var: np.ndarray, seed: int) -> float:
    """A deterministic episode alone, written out plainly: one observation row through numpy_mlp per step."""
    env = make_env(env_id)
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = np.clip(numpy_mlp(layers, normalize_with(np.asarray(obs, dtype=np.float64)[None], mean, var))[0],
                         low, high)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    env.close()
    return total


@pytest.mark.slow
@pytest.mark.parametrize("env_id, obs_dim, act_dim", [("HalfCheetah-v5", 17, 6), ("Hopper-v5", 11, 3)])
def test_episodes_evaluated_together_return_what_they_return_alone(env_id, obs_dim, act_dim):
    """Bit-identical returns (the stacked forward pass rounds each row as a row alone); on Hopper an episode ends
    when the hopper falls, so episodes finish while others go on."""
    pytest.importorskip("mujoco")
    rng = np.random.default_rng(0)
    dims = [obs_dim, 64, 64, act_dim]
    layers = [(rng.standard_normal((o, i)) / np.sqrt(i), 0.1 * rng.standard_normal(o)) for i, o in zip(dims, dims[1:])]
    mean, var = rng.standard_normal(obs_dim), rng.uniform(0.5, 4.0, obs_dim)
    envs = [make_env(env_id) for _ in range(5)]
    together = evaluate_policy(layers, envs, lambda s: normalize_with(s, mean, var), seed=40)
    for env in envs:
        env.close()
    alone = [one_episode_return(env_id, layers, mean, var, seed=40 + k) for k in range(5)]
    assert together == alone
    assert len(set(alone)) == 5  # five different episodes, not one repeated
