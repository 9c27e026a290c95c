"""Env id resolution, Car1D dynamics and rewards, and exact env snapshots."""
import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers Car1D)
from envs.resolve import make_env, resolve_env_id
from envs.snapshot import get_env_snapshot, set_env_snapshot
from envs.vector import VecEnv
from utils.errors import UserError


@pytest.mark.parametrize("legacy", ["HalfCheetah-v2", "HalfCheetah-v3", "Walker2d-v2", "Ant-v3", "Swimmer-v2",
                                    "Hopper-v3"])
def test_legacy_mujoco_ids_resolve_to_v5_with_notice(legacy):
    resolved = resolve_env_id(legacy)
    assert resolved.resolved == legacy.split("-")[0] + "-v5"
    assert resolved.requested == legacy
    assert resolved.notice and "v5" in resolved.notice and "\n" not in resolved.notice


@pytest.mark.parametrize("env_id", ["Car1DEnv-v1", "envs:Car1DEnv-v1", "Car1DEnv-v0", "MountainCarContinuous-v0",
                                    "HalfCheetah-v5"])
def test_known_ids_resolve_unchanged(env_id):
    resolved = resolve_env_id(env_id)
    assert resolved.notice is None
    assert resolved.resolved == env_id.split(":")[-1]
    env = make_env(resolved.resolved)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape


def test_gymnasium_make_accepts_module_prefix():
    env = gym.make("envs:Car1DEnv-v1")
    assert env.reset(seed=1)[0].shape == (2,)


def test_unknown_id_suggests_close_names():
    with pytest.raises(UserError, match="HalfCheetah-v5"):
        resolve_env_id("HalfCheeta-v5")
    with pytest.raises(UserError, match="unknown env id"):
        resolve_env_id("NoSuchThing-v0")


def test_car1d_v0_dynamics_and_reward():
    env = make_env("Car1DEnv-v0")
    env.reset(seed=0)
    env.unwrapped.state = np.array([10.0, 2.5])
    obs, reward, terminated, truncated, _ = env.step(np.array([2.0]))  # action clipped to 1
    v = min(2.5 + 1.0, 3.0)
    x = 10.0 + 0.1 * v
    assert obs == pytest.approx([x, v])
    # at the speed limit: the extra 0.01 penalty applies
    assert reward == pytest.approx(1 - 0.01 * abs(100 - x) - 0.001 * 1.0 - 0.01)
    assert not terminated and not truncated


def test_car1d_v1_dynamics_and_reward():
    env = make_env("Car1DEnv-v1")
    env.reset(seed=0)
    env.unwrapped.state = np.array([50.0, 4.0])
    obs, reward, *_ = env.step(np.array([-0.5]))
    x = 50.0 + 0.2 * 4.0 + 0.2**2 * (-0.5) / 2
    v = 4.0 + 0.2 * (-0.5)
    assert obs == pytest.approx([x, v])
    assert reward == pytest.approx(1 - 0.01 * abs(100 - x) - 0.001 * 0.5)


def test_car1d_reset_ranges_seeding_and_time_limit():
    env = make_env("Car1DEnv-v1")
    starts = np.array([env.reset(seed=s)[0] for s in range(200)])
    assert np.all(np.abs(starts[:, 0]) <= 1) and np.all(np.abs(starts[:, 1]) <= 0.1)
    assert np.array_equal(env.reset(seed=3)[0], env.reset(seed=3)[0])
    env.reset(seed=0)
    for t in range(1000):
        _, _, terminated, truncated, _ = env.step(np.zeros(1))
        assert not terminated
        if t < 999:
            assert not truncated
    assert truncated


@pytest.mark.parametrize("env_id", ["Car1DEnv-v1", "HalfCheetah-v5", "Ant-v5", "MountainCarContinuous-v0"])
def test_snapshot_restores_exactly(env_id):
    rng = np.random.default_rng(0)
    env = make_env(env_id)
    env.reset(seed=0)
    for _ in range(30):
        env.step(rng.uniform(env.action_space.low, env.action_space.high))
    snap = get_env_snapshot(env)
    actions = [rng.uniform(env.action_space.low, env.action_space.high) for _ in range(40)]
    expected = [(np.array(o), r) for o, r, *_ in (env.step(a) for a in actions)]  # copy: some envs reuse arrays
    expected_reset = env.reset()[0]
    fresh = make_env(env_id)
    fresh.reset(seed=123)
    set_env_snapshot(fresh, snap)
    got = [(np.array(o), r) for o, r, *_ in (fresh.step(a) for a in actions)]
    for (o1, r1), (o2, r2) in zip(expected, got):
        assert np.array_equal(o1, o2) and r1 == r2
    assert np.array_equal(fresh.reset()[0], expected_reset)  # RNG restored too


def test_vec_env_same_step_autoreset_keeps_final_obs():
    venv = VecEnv("Car1DEnv-v1", 2, seed=0)
    last = None
    for t in range(1000):
        step = venv.step(np.zeros((2, 1)))
        if t < 999:
            assert not step.truncated.any()
            last = step.obs.copy()
    assert step.truncated.all() and not step.terminated.any()
    assert len(step.episode_returns) == 2 and step.episode_lengths == [1000, 1000]
    assert not np.array_equal(step.final_obs, step.obs)  # final obs kept, obs is the reset one
    assert np.all(np.abs(step.obs[:, 0]) <= 1)
    assert np.abs(step.final_obs - last).max() < 1.0
    venv.close()


def test_subprocess_vec_env_equals_in_process():
    a, b = VecEnv("Car1DEnv-v1", 2, seed=5), VecEnv("Car1DEnv-v1", 2, seed=5, subprocess=True)
    try:
        actions = np.random.default_rng(0).uniform(-1, 1, size=(20, 2, 1))
        for act in actions:
            sa, sb = a.step(act), b.step(act)
            assert np.array_equal(sa.obs, sb.obs) and np.array_equal(sa.rewards, sb.rewards)
        snaps = b.get_snapshots()
        assert a.set_snapshots(snaps)
        assert np.array_equal(a.obs, b.obs)
    finally:
        a.close()
        b.close()
