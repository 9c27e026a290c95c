"""utils/analysis/metrics.py on a hand-built policy whose regions are known by hand (docs/design.md, "Metrics").

The policy (2 inputs, hidden widths 3 and 4, one action) is written as a checkpoint and loaded like any other.
Layer 1 has the zero lines x1 = 0, x2 = 0 and x1 + x2 = 1 of the *normalized* input x; layer 2 reads only
non-negative activations with weights of one sign, so its four neurons are constant (two always on, two always
off): every region is a cell of the three lines of layer 1, and the counts below are worked out by hand.
The normalization statistics (mean (10, -20), var (4, 4)) keep every raw state of the paths below inside one
region (s1 > 0, s2 < 0, s1 + s2 < 1) and double every raw length, so a metric computed on raw states, or a
length measured in raw units, gives different numbers. Coordinates are dyadic so that raw states are exact.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from models.checkpoint import load_checkpoint
from tests.helpers import write_policy_checkpoint
from tests.reference_regions import line_pieces_ref, path_pieces_ref
from utils.analysis.metrics import (architecture_summary, random_line_metrics, random_trajectory_metrics,
                                    trajectory_metrics)

W1 = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
B1 = [0.0, 0.0, -1.0]
W2 = [[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [2.0, 0.0, 1.0], [0.0, -1.0, -2.0]]
B2 = [0.5, -0.5, 1.0, -0.25]  # on, off, on, off for every input (the activations of layer 1 are >= 0)
HEAD_W, HEAD_B = [[1.0, -1.0, 2.0, 0.5]], [0.25]
OBS_MEAN, OBS_VAR = np.array([10.0, -20.0]), np.array([4.0, 4.0])
N_NEURONS = 3 + 4

# Trajectory A in the normalized input space: 4 segments crossing 1 + 2 + 2 + 1 = 6 zero lines at distinct points,
# through the 6 cells (pattern of layer 1) 000 -> 100 -> 110 -> 111 -> 011 -> 010 -> 000.
X_A = np.array([[-1.0, -0.5], [0.5, -0.5], [0.5, 2.0], [-2.0, 2.0], [-1.0, -0.5]])
A_TRANSITIONS, A_REGIONS = 6, 6
# Trajectory B: 111 -> 111 (no crossing), then 111 -> 011 -> 010 (2 crossings). C: inside one region.
X_B = np.array([[2.0, 2.0], [2.0, 1.5], [-1.0, 1.5]])
B_TRANSITIONS, B_REGIONS = 2, 3
X_C = np.array([[0.5, -1.0], [0.5, -0.75]])
C_TRANSITIONS, C_REGIONS = 0, 1


def raw(x: np.ndarray) -> np.ndarray:
    """Raw states whose normalized images are x (up to normalization's epsilon, ~1e-8 relative)."""
    return OBS_MEAN + np.asarray(x) * np.sqrt(OBS_VAR)


def length(points: np.ndarray) -> float:
    return float(sum(np.linalg.norm(b - a) for a, b in zip(points[:-1], points[1:])))


def write_policy(path, layers=None, head=(HEAD_W, HEAD_B), mean=OBS_MEAN, var=OBS_VAR, mode: str = "running"):
    """A policy written as a checkpoint in train.py's format and loaded back; by default the hand-built one."""
    layers = layers if layers is not None else [(W1, B1), (W2, B2)]
    return load_checkpoint(write_policy_checkpoint(path, layers, head, mean, var, mode=mode, iteration=7))


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return write_policy(tmp_path_factory.mktemp("ckpt") / "000007.pt")


def pattern(x: np.ndarray) -> tuple[bool, ...]:
    """Activation pattern of all 7 hidden neurons at one normalized input (a plain forward pass)."""
    z1 = np.array(W1) @ x + B1
    h1 = np.maximum(z1, 0.0)
    z2 = np.array(W2) @ h1 + B2
    return tuple(z1 > 0) + tuple(z2 > 0)


def line_regions_by_hand(point: np.ndarray, direction: np.ndarray) -> int:
    """Regions crossed by the whole line point + t direction: layer 2 is constant, so the only breakpoints are
    where a layer-1 neuron's affine pre-activation along the line is zero; count the patterns between them."""
    z0 = np.array(W1) @ point + B1
    dz = np.array(W1) @ direction
    ts = np.unique(np.round([-z / d for z, d in zip(z0, dz) if d != 0.0], 9))
    if len(ts) == 0:
        return 1
    probes = [ts[0] - 1.0, *((ts[:-1] + ts[1:]) / 2), ts[-1] + 1.0]
    return len({pattern(point + t * direction) for t in probes})


def test_the_hand_built_net_and_its_statistics_are_what_the_counts_assume(policy):
    for x in (X_A, X_B, X_C):
        np.testing.assert_allclose(policy.normalize(raw(x)), x, rtol=1e-7, atol=1e-9)
        for a, b in zip(x[:-1], x[1:]):  # layer 2 never switches along the paths
            assert all(pattern(a + t * (b - a))[3:] == (True, False, True, False) for t in np.linspace(0, 1, 101))
    layers = [(np.array(W1), np.array(B1)), (np.array(W2), np.array(B2))]
    for x, transitions, regions in ((X_A, A_TRANSITIONS, A_REGIONS), (X_B, B_TRANSITIONS, B_REGIONS),
                                    (X_C, C_TRANSITIONS, C_REGIONS)):
        ref = path_pieces_ref(layers, x)  # the independent reference agrees with the hand counts
        assert (ref["num_transitions"], ref["num_regions"]) == (transitions, regions)
    assert path_pieces_ref(layers, raw(X_A))["num_transitions"] == 0  # raw states would see no boundary at all


def test_trajectory_metrics_from_first_principles(policy):
    states = raw(X_A)
    got = trajectory_metrics(policy, states, "deterministic", "fixed")
    length_raw, length_norm = length(states), length(X_A)
    assert length_norm == pytest.approx(1.5 + 2.5 + 2.5 + math.hypot(1.0, 2.5))
    assert length_raw == pytest.approx(2 * length_norm)
    expected = {
        "num_transitions_deterministic_fixed": A_TRANSITIONS,
        "num_regions_deterministic_fixed": A_REGIONS,
        "deterministic_fixed_trajectory_timesteps": 5,
        "deterministic_fixed_trajectory_length": length_raw,
        "deterministic_fixed_trajectory_length_normalized": length_norm,
        "deterministic_fixed_normalized_density": A_TRANSITIONS / (length_norm * N_NEURONS),
        "deterministic_fixed_transitions_per_length": A_TRANSITIONS / length_norm,
    }
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-6), name
    assert isinstance(got["num_transitions_deterministic_fixed"], int)
    assert isinstance(got["num_regions_deterministic_fixed"], int)


def test_trajectory_metric_names_follow_policy_and_trajectory_type(policy):
    got = trajectory_metrics(policy, raw(X_B), "stochastic", "current")
    assert got["num_transitions_stochastic_current"] == B_TRANSITIONS
    assert got["num_regions_stochastic_current"] == B_REGIONS
    assert got["stochastic_current_trajectory_timesteps"] == 3
    assert got["stochastic_current_trajectory_length_normalized"] == pytest.approx(3.5, rel=1e-6)
    assert got["stochastic_current_trajectory_length"] == pytest.approx(7.0, rel=1e-6)
    assert got["stochastic_current_normalized_density"] == pytest.approx(2 / (3.5 * N_NEURONS), rel=1e-6)


def test_random_trajectory_metrics_are_mean_and_std_over_trajectories(policy):
    xs = [X_A, X_B, X_C]
    regions = np.array([A_REGIONS, B_REGIONS, C_REGIONS], dtype=float)
    transitions = np.array([A_TRANSITIONS, B_TRANSITIONS, C_TRANSITIONS], dtype=float)
    lengths = np.array([length(x) for x in xs])  # in the normalized input space
    assert lengths[1:] == pytest.approx([3.5, 0.25])
    per_quantity = {"num_regions": regions, "num_transitions": transitions,
                    "normalized_num_regions": regions / lengths, "normalized_num_transitions": transitions / lengths,
                    "trajectory_length": lengths}
    got = random_trajectory_metrics(policy, [raw(x) for x in xs])
    assert set(got) == {f"{stat}_{q}_random_trajectories" for q in per_quantity for stat in ("mean", "std")}
    for q, values in per_quantity.items():
        assert got[f"mean_{q}_random_trajectories"] == pytest.approx(values.mean(), rel=1e-6), q
        assert got[f"std_{q}_random_trajectories"] == pytest.approx(values.std(), rel=1e-6), q  # population std
    assert got["std_num_regions_random_trajectories"] != pytest.approx(regions.std(ddof=1))
    single = random_trajectory_metrics(policy, [raw(X_A)])
    assert single["mean_num_transitions_random_trajectories"] == A_TRANSITIONS
    assert single["std_num_transitions_random_trajectories"] == 0.0


def test_random_line_metrics_use_whole_lines_in_the_normalized_space(policy):
    # sampled states by their normalized images; the last one is the normalization mean itself (x = 0 exactly):
    # it lies on its origin line and is skipped there, but still defines a line through the mean of the points;
    # the one before is very close to the origin but not on it, and counts
    x = np.array([[1.75, 0.625], [0.75, -0.75], [0.125, 1.25], [0.625, -0.875], [0.25, 2.375], [-0.75, 0.5],
                  [2.0**-20, 2.0**-21], [0.0, 0.0]])
    points = raw(x)
    x_seen = policy.normalize(points)
    assert np.array_equal(x_seen[-1], [0.0, 0.0])
    origin_counts = [line_regions_by_hand(p, p) for p in x_seen[:-1]]
    # every line through the origin passes where x1 = 0 and x2 = 0 meet (one breakpoint for both), and crosses
    # x1 + x2 = 1 unless parallel to it (the second point)
    assert origin_counts == [3, 2, 3, 3, 3, 3, 3]
    mean = x_seen.mean(axis=0)
    mean_counts = [line_regions_by_hand(p, p - mean) for p in x_seen]
    assert len(set(mean_counts)) > 1
    got = random_line_metrics(policy, points)
    assert set(got) == {f"{stat}_num_regions_random_lines_{anchor}" for anchor in ("origin", "mean")
                        for stat in ("mean", "std")}
    assert got["mean_num_regions_random_lines_origin"] == pytest.approx(np.mean(origin_counts))
    assert got["std_num_regions_random_lines_origin"] == pytest.approx(np.std(origin_counts))
    assert got["mean_num_regions_random_lines_mean"] == pytest.approx(np.mean(mean_counts))
    assert got["std_num_regions_random_lines_mean"] == pytest.approx(np.std(mean_counts))


def test_random_line_metrics_match_the_reference_on_a_random_net(tmp_path):
    # a random two-layer net bends its boundaries, so whole lines cross different numbers of regions depending
    # on where they run: lines through the wrong anchor, or in the wrong space, give other counts
    rng = np.random.default_rng(5)
    layers = [(rng.normal(size=(6, 3)), rng.normal(size=6)), (rng.normal(size=(5, 6)), rng.normal(size=5))]
    layers = [(np.float32(W).astype(np.float64), np.float32(b).astype(np.float64)) for W, b in layers]
    mean, var = np.array([3.0, -1.0, 20.0]), np.array([9.0, 0.01, 100.0])
    policy = write_policy(tmp_path / "random.pt", layers, (rng.normal(size=(2, 5)), rng.normal(size=2)), mean, var)
    points = mean + rng.normal(size=(40, 3)) * np.sqrt(var)
    points[7] = mean  # normalized to the origin exactly: no line through the origin
    x = policy.normalize(points)  # the input space, x = normalize(s) with the checkpoint's statistics
    assert np.array_equal(x[7], np.zeros(3))
    keep = np.arange(len(x)) != 7
    origin = line_pieces_ref(layers, x[keep], x[keep])["num_regions_per_line"]
    anchor = x.mean(axis=0)
    through_mean = line_pieces_ref(layers, x, x - anchor)["num_regions_per_line"]
    assert np.std(origin) > 0 and np.std(through_mean) > 0
    got = random_line_metrics(policy, points)
    assert got["mean_num_regions_random_lines_origin"] == pytest.approx(np.mean(origin))
    assert got["std_num_regions_random_lines_origin"] == pytest.approx(np.std(origin))
    assert got["mean_num_regions_random_lines_mean"] == pytest.approx(np.mean(through_mean))
    assert got["std_num_regions_random_lines_mean"] == pytest.approx(np.std(through_mean))


def test_a_point_equal_to_the_mean_anchor_is_skipped(tmp_path):
    # normalization off (x = s exactly) and dyadic coordinates, so the mean of the points is exactly one of them
    policy = write_policy(tmp_path / "off.pt", mode="off")
    c, d1, d2 = np.array([0.375, 0.25]), np.array([1.5, 0.5]), np.array([0.0, 1.125])  # d2 parallel to x1 = 0
    points = np.array([c + d1, c - d1, c + d2, c - d2, c])
    assert np.array_equal(policy.normalize(points), points) and np.array_equal(points.mean(axis=0), c)
    expected = [line_regions_by_hand(p, p - c) for p in points[:-1]]
    assert len(set(expected)) > 1
    got = random_line_metrics(policy, points)
    assert got["mean_num_regions_random_lines_mean"] == pytest.approx(np.mean(expected))
    assert got["std_num_regions_random_lines_mean"] == pytest.approx(np.std(expected))
    origin = [line_regions_by_hand(p, p) for p in points]  # no point is the origin: all five lines count
    assert got["mean_num_regions_random_lines_origin"] == pytest.approx(np.mean(origin))
    assert got["std_num_regions_random_lines_origin"] == pytest.approx(np.std(origin))


def test_architecture_summary(policy):
    assert architecture_summary(policy) == {
        "depth": 2,                                       # hidden layers
        "width": 4,                                       # the widest hidden layer (not the first)
        "n": N_NEURONS,                                   # hidden neurons only: the linear head has none
        "n_params": (2 * 3 + 3) + (3 * 4 + 4) + (4 * 1 + 1),  # weights and biases with the head, no log-std
    }
