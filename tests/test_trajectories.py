"""utils/analysis/trajectories.py: seeded episodes on Car1DEnv-v1 checked against the env's dynamics by hand
(docs/design.md, "The toy environments"), and the trajectory cache that is trusted only for the same weights and env."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from models.checkpoint import load_checkpoint
from tests.helpers import write_policy_checkpoint
from utils.analysis.trajectories import (EpisodeRequest, cache_path, cached_episode, cached_episodes,
                                        random_action_episodes, sample_episode, sample_episodes)

ENV = "Car1DEnv-v1"
DT, VMAX, TARGET = 0.2, 100.0, 100.0
# A controller in the normalized input (x_n, v_n) = ((x - 1) / 2, v): ReLU pairs give x_n and v_n back, and the
# head makes the mean 1 - 4 x_n - 4 v_n = 3 - 2 x - 4 v (a damped pull to x = 1.5): beyond 1 at the start, so
# clipped, then inside [-1, 1]. All weights are exact in float32.
W1, B1 = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]), np.zeros(4)
HEAD_W, HEAD_B = np.array([[-4.0, 4.0, -4.0, 4.0]]), np.array([1.0])
OBS_MEAN, OBS_VAR = np.array([1.0, 0.0]), np.array([4.0, 1.0])
LOG_STD = -0.5


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "000003.pt"
    return load_checkpoint(write_policy_checkpoint(path, [(W1, B1)], (HEAD_W, HEAD_B), OBS_MEAN, OBS_VAR,
                                                   log_std=LOG_STD, iteration=3))


@pytest.fixture(scope="module")
def other_policy(tmp_path_factory):
    """The same network with a different head bias: other weights, other digest."""
    path = tmp_path_factory.mktemp("ckpt") / "000003.pt"
    return load_checkpoint(write_policy_checkpoint(path, [(W1, B1)], (HEAD_W, HEAD_B + 0.5), OBS_MEAN, OBS_VAR,
                                                   log_std=LOG_STD, iteration=3))


def policy_mean_by_hand(states: np.ndarray) -> np.ndarray:
    """The Gaussian's mean for raw states (T, 2): 3 - 2 x - 4 v, up to normalization's epsilon."""
    return (3.0 - 2.0 * states[:, 0] - 4.0 * states[:, 1])[:, None]


def car1d_v1_step(state: np.ndarray, a: float) -> tuple[np.ndarray, float]:
    """docs/design.md: x <- x + dt v + dt^2 a / 2; v <- clip(v + dt a, -100, 100); reward at the new state."""
    x, v = state
    x = x + DT * v + DT**2 * a / 2.0
    v = float(np.clip(v + DT * a, -VMAX, VMAX))
    reward = 1.0 - 0.01 * abs(TARGET - x) - 0.001 * abs(a) - 0.01 * float(abs(abs(v) - VMAX) < 1e-3)
    return np.array([x, v]), reward


def assert_same_episode(a, b):
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)


# ----------------------------------------------------------------------------------------------------------------
# sample_episode
# ----------------------------------------------------------------------------------------------------------------
def test_deterministic_episode_is_the_clipped_policy_mean_under_the_env_dynamics(policy):
    traj = sample_episode(ENV, policy, stochastic=False, seed=4, max_steps=60)
    assert traj.states.shape == (60, 2) and traj.actions.shape == (60, 1) and traj.rewards.shape == (60,)
    assert traj.timesteps == 60 and traj.episode_return == pytest.approx(traj.rewards.sum())
    x0, v0 = traj.states[0]
    assert -1.0 <= x0 <= 1.0 and -0.1 <= v0 <= 0.1  # the reset distribution
    mean = policy_mean_by_hand(traj.states)
    np.testing.assert_allclose(traj.actions, np.clip(mean, -1.0, 1.0), rtol=0, atol=1e-6)
    clipped = np.abs(mean[:, 0]) > 1.0
    assert clipped.any() and not clipped.all()  # both cases happen along this episode
    # one step by hand, and every later state is the env step of the one before (no state skipped or repeated)
    s1, r0 = car1d_v1_step(traj.states[0], traj.actions[0, 0])
    np.testing.assert_allclose(traj.states[1], s1, rtol=0, atol=1e-12)
    assert traj.rewards[0] == pytest.approx(r0, abs=1e-12)
    for i in range(59):
        nxt, reward = car1d_v1_step(traj.states[i], traj.actions[i, 0])
        np.testing.assert_allclose(traj.states[i + 1], nxt, rtol=0, atol=1e-9)
        assert traj.rewards[i] == pytest.approx(reward, abs=1e-9)


def test_states_exclude_the_final_observation(policy):
    short = sample_episode(ENV, policy, seed=4, max_steps=5)
    longer = sample_episode(ENV, policy, seed=4, max_steps=6)
    np.testing.assert_array_equal(longer.states[:5], short.states)
    # the observation returned by the 5th step is s_5: a longer episode's 6th row, never a row of this one
    s5, _ = car1d_v1_step(short.states[4], short.actions[4, 0])
    np.testing.assert_allclose(longer.states[5], s5, atol=1e-12)
    assert not any(np.allclose(s, s5) for s in short.states)
    full = sample_episode(ENV, policy, seed=4)  # Car1D never terminates: truncated after 1000 steps
    assert full.timesteps == 1000 and len(full.actions) == len(full.rewards) == 1000
    np.testing.assert_array_equal(full.states[:6], longer.states)


def test_same_seed_same_episode_and_other_seed_other_episode(policy):
    for stochastic in (False, True):
        a = sample_episode(ENV, policy, stochastic=stochastic, seed=7, max_steps=40)
        assert_same_episode(a, sample_episode(ENV, policy, stochastic=stochastic, seed=7, max_steps=40))
        assert not np.array_equal(a.states, sample_episode(ENV, policy, stochastic=stochastic, seed=8,
                                                           max_steps=40).states)


def test_stochastic_actions_add_seeded_gaussian_noise_to_the_mean(policy):
    det = sample_episode(ENV, policy, stochastic=False, seed=2, max_steps=40)
    sto = sample_episode(ENV, policy, stochastic=True, seed=2, max_steps=40)
    np.testing.assert_array_equal(det.states[0], sto.states[0])  # the same reset
    assert not np.array_equal(det.states, sto.states)
    # the module's promise: noise std * N(0, 1) drawn from numpy's default_rng(seed), then clipped like training
    eps = np.random.default_rng(2).standard_normal((40, 1))
    expected = np.clip(policy_mean_by_hand(sto.states) + np.exp(LOG_STD) * eps, -1.0, 1.0)
    np.testing.assert_allclose(sto.actions, expected, rtol=0, atol=1e-6)
    assert np.all(np.abs(sto.actions) <= 1.0)
    assert (np.abs(sto.actions) < 1.0).sum() > 10


def test_random_actions_lie_in_the_action_bounds(policy):
    traj = sample_episode(ENV, None, seed=3, max_steps=200)
    assert traj.actions.shape == (200, 1)
    assert np.all(traj.actions >= -1.0) and np.all(traj.actions <= 1.0)
    assert traj.actions.min() < -0.8 and traj.actions.max() > 0.8  # spread over the whole range
    assert_same_episode(traj, sample_episode(ENV, None, seed=3, max_steps=200))
    for i in range(199):
        nxt, _ = car1d_v1_step(traj.states[i], traj.actions[i, 0])
        np.testing.assert_allclose(traj.states[i + 1], nxt, atol=1e-9)
    first, second = random_action_episodes(ENV, 2, seed=3)
    assert first.timesteps == second.timesteps == 1000
    np.testing.assert_array_equal(first.states[:200], traj.states)  # episode k is seeded with seed + k
    np.testing.assert_array_equal(second.states[:5], sample_episode(ENV, None, seed=4, max_steps=5).states)


# ----------------------------------------------------------------------------------------------------------------
# sample_episodes: many episodes in lockstep, each the same as sampled alone
# ----------------------------------------------------------------------------------------------------------------
def random_policies(tmp_path, obs_dim: int, act_dim: int, count: int, *, seed: int = 0) -> list:
    """`count` checkpoints of random c16,16 policies with random statistics (every other one with normalization
    off): weights whose products round, unlike the hand-made controller's."""
    rng = np.random.default_rng(seed)
    policies = []
    for k in range(count):
        dims = [obs_dim, 16, 16]
        hidden = [(rng.standard_normal((o, i)) / np.sqrt(i), 0.1 * rng.standard_normal(o)) for i, o in zip(dims, dims[1:])]
        head = (rng.standard_normal((act_dim, 16)) / 4.0, 0.1 * rng.standard_normal(act_dim))
        path = write_policy_checkpoint(tmp_path / f"{k:06d}.pt", hidden, head, rng.standard_normal(obs_dim),
                                       rng.uniform(0.5, 4.0, obs_dim), mode="off" if k % 2 else "running",
                                       log_std=-1.0 + 0.1 * k, iteration=k)
        policies.append(load_checkpoint(path))
    return policies


def test_episodes_sampled_together_are_bit_identical_to_one_at_a_time(policy, other_policy, tmp_path):
    """Different checkpoints (own weights, statistics, log-std), deterministic and stochastic, one policy twice
    with other seeds, one request repeated: every episode equals sample_episode of it alone, bit for bit."""
    mixed = [policy, other_policy, *random_policies(tmp_path, 2, 1, 4)]
    requests = [EpisodeRequest(p, stochastic, seed) for p in mixed for stochastic in (False, True)
                for seed in (0, 3)] + [EpisodeRequest(policy, True, 3)]
    together = sample_episodes(ENV, requests, max_steps=300)
    assert len(together) == len(requests)
    for request, episode in zip(requests, together):
        assert episode.timesteps == 300
        assert_same_episode(episode, sample_episode(ENV, request.policy, stochastic=request.stochastic,
                                                    seed=request.seed, max_steps=300))
    assert_same_episode(sample_episodes(ENV, requests[:1])[0], sample_episode(ENV, policy, seed=0))  # 1000 steps
    assert not np.array_equal(together[0].states, together[1].states)  # the requests differ, so do the episodes


def test_episodes_that_end_at_different_steps_are_the_same_as_alone(tmp_path):
    """Hopper-v5 terminates when it falls: under random policies the episodes of one batch end at different steps;
    each keeps its own length and states, and the others go on without it."""
    pytest.importorskip("mujoco")
    policies = random_policies(tmp_path, 11, 3, 4, seed=1)
    requests = [EpisodeRequest(p, stochastic, seed) for p in policies for stochastic in (False, True)
                for seed in (0, 1)]
    together = sample_episodes("Hopper-v5", requests)
    lengths = {episode.timesteps for episode in together}
    assert len(lengths) > 1 and max(lengths) < 1000  # ended by termination, at different steps
    for request, episode in zip(requests, together):
        assert_same_episode(episode, sample_episode("Hopper-v5", request.policy, stochastic=request.stochastic,
                                                    seed=request.seed))


def test_cached_episodes_sample_only_the_misses_together(policy, other_policy, tmp_path, monkeypatch):
    import utils.analysis.trajectories as trajectories

    hit = cached_episode(tmp_path, "000001", policy, ENV, stochastic=False, seed=0)
    planted = hit.states + 1.0
    _plant(cache_path(tmp_path, "000001", "deterministic", 0), states=planted)
    batches = []
    real = trajectories.sample_episodes
    monkeypatch.setattr(trajectories, "sample_episodes", lambda env_id, requests: batches.append(requests) or
                        real(env_id, requests))
    keyed = [("000001", EpisodeRequest(policy, False, 0)), ("000001", EpisodeRequest(policy, True, 0)),
             ("000002", EpisodeRequest(other_policy, False, 0)), ("000002", EpisodeRequest(other_policy, False, 0))]
    episodes = cached_episodes(tmp_path, ENV, keyed)
    assert [len(b) for b in batches] == [2]  # one batch: the two misses, the repeated pair once
    np.testing.assert_array_equal(episodes[0].states, planted)  # the hit is read, not sampled
    assert_same_episode(episodes[1], sample_episode(ENV, policy, stochastic=True, seed=0))
    assert_same_episode(episodes[2], sample_episode(ENV, other_policy, stochastic=False, seed=0))
    assert_same_episode(episodes[3], episodes[2])
    assert_same_episode(cached_episode(tmp_path, "000002", other_policy, ENV, stochastic=False, seed=0), episodes[2])
    again = cached_episodes(tmp_path, ENV, keyed[1:])  # all hits now: nothing is sampled
    assert [len(b) for b in batches] == [2]
    for episode, earlier in zip(again, episodes[1:]):
        assert_same_episode(episode, earlier)


# ----------------------------------------------------------------------------------------------------------------
# cached_episode
# ----------------------------------------------------------------------------------------------------------------
def _plant(path, **changes):
    """Rewrite a cache file with some arrays replaced (to see whether the next call reads it)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(path, **{**arrays, **changes})


def test_cache_is_written_without_objects_and_reused_for_the_same_weights_and_env(policy, tmp_path):
    first = cached_episode(tmp_path, "000003", policy, ENV, stochastic=False, seed=0)
    assert_same_episode(first, sample_episode(ENV, policy, stochastic=False, seed=0))
    path = cache_path(tmp_path, "000003", "deterministic", 0)
    assert path.is_file() and path.parent == tmp_path
    with np.load(path, allow_pickle=False) as data:  # every array loads without pickle: no object arrays
        arrays = {k: data[k] for k in data.files}
    assert {"states", "actions", "rewards"} <= set(arrays)
    assert all(a.dtype.kind != "O" for a in arrays.values())
    np.testing.assert_array_equal(arrays["states"], first.states)
    # a planted cache with the same digest and env is returned as it is: the cache is read, not re-sampled
    planted = first.states + 1.0
    _plant(path, states=planted)
    again = cached_episode(tmp_path, "000003", policy, ENV, stochastic=False, seed=0)
    np.testing.assert_array_equal(again.states, planted)


def test_cache_of_other_weights_or_another_env_is_resampled(policy, other_policy, tmp_path):
    assert other_policy.weights_digest != policy.weights_digest
    first = cached_episode(tmp_path, "000003", policy, ENV, stochastic=False, seed=0)
    path = cache_path(tmp_path, "000003", "deterministic", 0)
    _plant(path, states=first.states + 1.0)
    # same iteration, other weights (a re-trained iteration, or best.pt that moved on)
    theirs = cached_episode(tmp_path, "000003", other_policy, ENV, stochastic=False, seed=0)
    assert_same_episode(theirs, sample_episode(ENV, other_policy, stochastic=False, seed=0))
    assert not np.array_equal(theirs.states, first.states)
    with np.load(path, allow_pickle=False) as data:
        assert str(data["digest"]) == other_policy.weights_digest
    # the same weights on another env with the same observation size
    v0 = cached_episode(tmp_path, "000003", other_policy, "Car1DEnv-v0", stochastic=False, seed=0)
    assert_same_episode(v0, sample_episode("Car1DEnv-v0", other_policy, stochastic=False, seed=0))
    assert not np.array_equal(v0.states, theirs.states)


def test_deleted_or_corrupt_cache_is_resampled_to_the_same_states(policy, tmp_path):
    first = cached_episode(tmp_path, "best", policy, ENV, stochastic=True, seed=5)
    path = cache_path(tmp_path, "best", "stochastic", 5)
    assert path.is_file()
    path.unlink()
    assert_same_episode(cached_episode(tmp_path, "best", policy, ENV, stochastic=True, seed=5), first)
    assert path.is_file()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # torn
    assert_same_episode(cached_episode(tmp_path, "best", policy, ENV, stochastic=True, seed=5), first)
    assert zipfile.is_zipfile(path)  # rewritten whole
    path.write_bytes(b"not an npz at all")
    assert_same_episode(cached_episode(tmp_path, "best", policy, ENV, stochastic=True, seed=5), first)
    np.savez(path, states=np.zeros((3, 2)))  # readable, but not a cache entry (no digest, env, actions)
    assert_same_episode(cached_episode(tmp_path, "best", policy, ENV, stochastic=True, seed=5), first)


def test_deterministic_and_stochastic_episodes_are_cached_apart(policy, tmp_path):
    det = cached_episode(tmp_path, "000003", policy, ENV, stochastic=False, seed=1)
    sto = cached_episode(tmp_path, "000003", policy, ENV, stochastic=True, seed=1)
    assert not np.array_equal(det.states, sto.states)
    assert_same_episode(cached_episode(tmp_path, "000003", policy, ENV, stochastic=False, seed=1), det)
    assert_same_episode(cached_episode(tmp_path, "000003", policy, ENV, stochastic=True, seed=1), sto)
    assert cache_path(tmp_path, "000003", "deterministic", 1) != cache_path(tmp_path, "000003", "stochastic", 1)
    assert len(list(tmp_path.glob("*.npz"))) == 2
