"""VecNormalize math: running statistics, observation transform, reward scaling."""
import numpy as np
import pytest

from models.normalization import CLIP_OBS, EPSILON, Normalizer, RunningMeanStd, normalization_affine, normalize_with


def test_running_mean_std_equals_batch_statistics():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (1, 7, 50, 3)]
    rms = RunningMeanStd.zeros((4,))
    for batch in batches:
        rms.update(batch)
    everything = np.concatenate(batches)
    # the initial pseudo-count of 1e-4 at mean 0 / var 1 shifts results by ~1e-6
    assert np.allclose(rms.mean, everything.mean(0), rtol=1e-5, atol=1e-5)
    assert np.allclose(rms.var, everything.var(0), rtol=1e-4)
    assert rms.count == pytest.approx(len(everything) + 1e-4)


def test_normalize_obs_and_clip():
    norm = Normalizer(obs_dim=2, n_envs=1)
    norm.obs_rms = RunningMeanStd(np.array([1.0, -1.0]), np.array([4.0, 0.25]), 10)
    out = norm.normalize_obs(np.array([[3.0, 100.0]]))
    assert out[0, 0] == pytest.approx(2.0 / np.sqrt(4.0 + EPSILON))
    assert out[0, 1] == CLIP_OBS


def test_modes():
    obs = np.ones((3, 2)) * 5
    running, frozen, off = (Normalizer(2, 1, mode=m) for m in ("running", "frozen", "off"))
    for norm in (running, frozen, off):
        norm.observe(obs)
    assert running.obs_rms.count > 3 and frozen.obs_rms.count < 1
    frozen.observe(obs, warmup=True)
    assert frozen.obs_rms.count > 3
    assert np.array_equal(off.normalize_obs(obs), obs)


def test_reward_scaling_divides_by_return_std_and_resets_on_done():
    norm = Normalizer(obs_dim=1, n_envs=2, gamma=0.5)
    scaled = norm.scale_rewards(np.array([1.0, 2.0]), np.array([False, True]))
    expected_var = RunningMeanStd.zeros(())
    expected_var.update(np.array([1.0, 2.0]))
    assert scaled == pytest.approx(np.array([1.0, 2.0]) / np.sqrt(expected_var.var + EPSILON))
    assert norm.returns.tolist() == [1.0, 0.0]


def test_state_dict_round_trip():
    norm = Normalizer(obs_dim=3, n_envs=2)
    norm.observe(np.random.default_rng(1).normal(size=(5, 3)))
    norm.scale_rewards(np.array([1.0, 2.0]), np.array([False, False]))
    other = Normalizer(obs_dim=3, n_envs=2)
    other.load_state_dict(norm.state_dict())
    assert np.array_equal(other.obs_rms.mean, norm.obs_rms.mean)
    assert np.array_equal(other.obs_rms.var, norm.obs_rms.var)
    assert np.array_equal(other.returns, norm.returns)


def test_normalization_affine_is_the_transform_before_its_clip():
    g = np.random.default_rng(2)
    mean, var = g.normal(size=3), g.uniform(0.01, 2.0, size=3)
    obs = 20 * g.normal(size=(50, 3))
    shift, scale = normalization_affine(mean, var)
    np.testing.assert_array_equal(normalize_with(obs, mean, var), np.clip((obs - shift) / scale, -CLIP_OBS, CLIP_OBS))
    np.testing.assert_array_equal(scale, np.sqrt(var + EPSILON))
    shift, scale = normalization_affine(mean, var, enabled=False)
    assert shift.tolist() == [0.0] * 3 and scale.tolist() == [1.0] * 3
    np.testing.assert_array_equal(normalize_with(obs, mean, var, enabled=False), obs)
