"""Tests for utils/geometry/regions.py: exact 1-D pieces along paths, segments and full lines."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference_regions import line_pieces_ref, path_pieces_ref, pattern_at, segment_pieces_ref
from utils.errors import UserError
from utils.geometry.regions import (
    _pack_on_device,
    activation_patterns,
    count_distinct_rows,
    count_path,
    input_jacobian,
    line_regions,
    lines_through,
    pack_bits,
    pack_layers,
    path_pieces,
    segment_pieces,
    unpack_patterns,
)

torch.set_num_threads(1)


def random_net(rng: np.random.Generator, in_dim: int, widths, bias_std: float = 0.3):
    layers, prev = [], in_dim
    for w in widths:
        layers.append((rng.normal(size=(w, prev)) * np.sqrt(2.0 / prev), rng.normal(size=w) * bias_std))
        prev = w
    return layers


def random_case(rng: np.random.Generator):
    """A random net (1-4 layers, widths 2-64, mostly small, inputs 2-20) and a path, sometimes made degenerate."""
    d = int(rng.integers(2, 21))
    depth = int(rng.integers(1, 5))
    widths = [int(rng.integers(2, 65)) if rng.random() < 0.15 else int(rng.integers(2, 13)) for _ in range(depth)]
    layers = random_net(rng, d, widths)
    T = int(rng.integers(2, 7))
    pts = rng.normal(size=(T, d)) * rng.uniform(0.3, 3.0)
    kind = rng.integers(0, 6)
    if kind == 1:  # repeated identical states -> zero-length segments
        pts = np.repeat(pts, 2, axis=0)
    elif kind == 2:  # duplicate (proportional) neurons: several bits flip at one point
        W, b = layers[0]
        W[1], b[1] = 2.5 * W[0], 2.5 * b[0]
    elif kind == 3:  # a neuron with zero weight along the first segment
        W, b = layers[0]
        v = pts[1] - pts[0]
        W[0] -= (W[0] @ v) / (v @ v) * v
    elif kind == 4 and depth > 1:  # a dead layer: every neuron off everywhere near the data
        W, b = layers[0]
        layers[0] = (np.zeros_like(W), -np.ones_like(b))
    elif kind == 5:  # a first-layer zero exactly at a trajectory point (segment end)
        W, b = layers[0]
        b[0] = -W[0] @ pts[1]
    return layers, pts, int(kind)


def assert_matches_reference(vec, ref):
    assert vec.num_transitions == ref["num_transitions"]
    assert vec.num_regions == ref["num_regions"]
    seg = vec.segment_index.numpy()
    assert seg.tolist() == ref["segment"]
    np.testing.assert_array_equal(vec.unpacked_patterns().numpy(), np.array(ref["pattern"]))
    np.testing.assert_allclose(vec.t_start.numpy(), ref["t_start"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(vec.t_end.numpy(), ref["t_end"], rtol=1e-6, atol=1e-6)


def test_paths_match_simple_implementation_on_hundreds_of_random_nets():
    rng = np.random.default_rng(0)
    for _ in range(300):
        layers, pts, kind = random_case(rng)
        vec = path_pieces(layers, pts)
        ref = path_pieces_ref(layers, pts)
        assert_matches_reference(vec, ref)
        assert vec.transitions_per_layer == ref["transitions_per_layer"]
        assert sum(vec.transitions_per_layer) == vec.num_transitions
        assert vec.opened_by_layer.tolist() == ref["layer"]
        if kind != 2:  # with duplicated neurons the zeros tie up to round-off, so either may be named
            assert vec.opened_by_neuron.tolist() == ref["neuron"]


def test_lines_match_simple_implementation_on_random_nets():
    rng = np.random.default_rng(1)
    for _ in range(60):
        layers, pts, _ = random_case(rng)
        pts = pts + rng.normal(size=pts.shape) * 1e-3  # lines need nonzero directions
        mean = pts.mean(0)
        for anchor in (np.zeros(pts.shape[1]), mean):
            p, u = lines_through(pts, anchor)
            vec = line_regions(layers, p, u)
            ref = line_pieces_ref(layers, p.numpy(), u.numpy())
            assert_matches_reference(vec.pieces, ref)
            assert vec.num_regions.tolist() == ref["num_regions_per_line"]
            assert torch.isinf(vec.pieces.t_start[vec.pieces.opened_by_layer < 0]).all()


def test_a_scalar_anchor_is_that_value_in_every_coordinate():
    pts = np.random.default_rng(3).normal(size=(5, 4))
    for scalar in (0, 0.5):
        p, u = lines_through(pts, scalar)
        np.testing.assert_array_equal(u.numpy(), pts - scalar)
        np.testing.assert_array_equal(p.numpy(), pts)
    with pytest.raises(UserError, match="anchor"):
        lines_through(pts, np.zeros(3))


def test_one_layer_on_a_full_line_has_n_plus_one_regions():
    rng = np.random.default_rng(2)
    for n in (1, 5, 17, 64):
        layers = random_net(rng, 6, [n])
        res = line_regions(layers, rng.normal(size=(3, 6)), rng.normal(size=(3, 6)))
        assert res.num_regions.tolist() == [n + 1] * 3
        assert res.pieces.num_transitions == 3 * n
        assert res.pieces.transitions_per_layer == [3 * n]


def test_dense_sampling_never_sees_more_changes_and_sees_all_when_fine_enough():
    rng = np.random.default_rng(3)
    for _ in range(40):
        d = int(rng.integers(2, 8))
        layers = random_net(rng, d, [int(rng.integers(2, 10)) for _ in range(int(rng.integers(1, 4)))])
        a, b = rng.normal(size=(2, d)) * 2
        res = segment_pieces(layers, a[None], b[None])
        ts = np.linspace(0, 1, 20001)
        pats = activation_patterns(layers, a[None] + ts[:, None] * (b - a)[None]).numpy()
        changes = int((pats[1:] != pats[:-1]).any(1).sum())
        assert changes <= res.num_transitions
        if float((res.t_end - res.t_start).min()) > 2 * (ts[1] - ts[0]):
            assert changes == res.num_transitions
            # Every computed piece's pattern is what the samples inside it see.
            mids = ((res.t_start + res.t_end) / 2).numpy()
            idx = np.searchsorted(ts, mids)
            np.testing.assert_array_equal(pats[idx], res.patterns.numpy())


def test_zero_length_segment_is_one_piece_with_the_points_pattern():
    rng = np.random.default_rng(4)
    layers = random_net(rng, 3, [8, 8])
    x = rng.normal(size=3)
    res = segment_pieces(layers, x[None], x[None])
    assert res.num_transitions == 0 and res.num_regions == 1
    assert float(res.length[0]) == 0.0
    np.testing.assert_array_equal(res.unpacked_patterns().numpy()[0], pattern_at(layers, x))


def test_repeated_identical_states_add_no_transitions():
    rng = np.random.default_rng(5)
    layers = random_net(rng, 4, [10, 10])
    pts = rng.normal(size=(5, 4))
    once = path_pieces(layers, pts)
    twice = path_pieces(layers, np.repeat(pts, 3, axis=0))
    assert twice.num_transitions == once.num_transitions
    assert twice.num_regions == once.num_regions
    assert np.isclose(float(twice.length.sum()), float(once.length.sum()))


def test_sign_change_exactly_at_a_segment_end_is_not_a_transition():
    # relu(x0 - 1) on the segment [0, 1] x {0}: zero exactly at the end.
    layers = [(np.array([[1.0, 0.0]]), np.array([-1.0]))]
    res = segment_pieces(layers, [[0.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [2.0, 0.0]])
    assert res.num_transitions == 0
    assert res.num_regions == 2  # off on the first segment, on on the second
    assert res.unpacked_patterns()[:, 0].tolist() == [False, True]


def test_several_neurons_zero_at_one_point_make_one_transition_flipping_several_bits():
    # Three neurons (two in layer 1 on the same hyperplane, one in layer 2 driven by them) all switch at x0 = 0.5.
    W1 = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    b1 = np.array([-0.5, -1.0, 0.0])
    W2 = np.array([[1.0, 1.0, 0.0]])
    b2 = np.array([0.0])
    layers = [(W1, b1), (W2, b2)]
    res = segment_pieces(layers, [[0.0, -1.0]], [[1.0, -1.0]])
    assert res.num_transitions == 1
    assert res.t_start.tolist() == pytest.approx([0.0, 0.5])
    bits = res.unpacked_patterns().numpy()
    assert bits.tolist() == [[False, False, False, False], [True, True, False, True]]
    assert (res.opened_by_layer[1].item(), res.opened_by_neuron[1].item()) == (0, 0)
    assert res.transitions_per_layer == [1, 0]


def test_neuron_with_zero_weight_along_the_segment_never_splits_it():
    layers = [(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0.0, -0.5]))]
    # Moving along x0 at x1 = 0: neuron 0 is exactly zero all along (off), neuron 1 switches at 0.5.
    res = segment_pieces(layers, [[0.0, 0.0]], [[1.0, 0.0]])
    assert res.num_transitions == 1
    assert res.unpacked_patterns()[:, 0].tolist() == [False, False]


def test_dead_layer_means_one_region():
    rng = np.random.default_rng(6)
    layers = random_net(rng, 5, [12, 7, 9])
    pts = rng.normal(size=(30, 5)) * 3
    b2, (W3, b3) = layers[1][1], layers[2]
    dead = (np.zeros((7, 12)), -np.ones(7))
    # A dead first layer: its neurons are off everywhere, so the net is constant: one region, no transition, and
    # the pattern (derived by hand) is all off, then b2 > 0, then the signs of W3 relu(b2) + b3.
    res = path_pieces([(np.zeros((12, 5)), -np.ones(12)), layers[1], layers[2]], pts)
    assert res.num_transitions == 0 and res.num_regions == 1 and res.transitions_per_layer == [0, 0, 0]
    expected = np.concatenate([np.zeros(12, dtype=bool), b2 > 0, W3 @ np.maximum(b2, 0.0) + b3 > 0])
    np.testing.assert_array_equal(res.unpacked_patterns().numpy(), np.tile(expected, (29, 1)))
    # A dead middle layer: only the first layer can split, so the pieces are those of the first layer alone (from
    # the reference); the dead layer's bits are all off and the last layer sees zeros, so its bits are b3 > 0.
    res = path_pieces([layers[0], dead, layers[2]], pts)
    first = path_pieces_ref([layers[0]], pts)
    assert res.transitions_per_layer == [first["num_transitions"], 0, 0]
    assert res.num_transitions == first["num_transitions"] and res.num_regions == first["num_regions"]
    bits = res.unpacked_patterns().numpy()
    np.testing.assert_array_equal(bits[:, :12], np.array(first["pattern"]))
    assert not bits[:, 12:19].any()
    np.testing.assert_array_equal(bits[:, 19:], np.tile(b3 > 0, (len(bits), 1)))


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(7)
    layers = random_net(rng, 6, [16, 16])
    pts = rng.normal(size=(50, 6))
    a, b = path_pieces(layers, pts), path_pieces(layers, pts, chunk_size=7)
    assert a.num_transitions == b.num_transitions and a.num_regions == b.num_regions
    assert torch.equal(a.patterns, b.patterns) and torch.equal(a.segment_index, b.segment_index)
    assert count_path(layers, pts).num_transitions == a.num_transitions


def test_pieces_tile_each_segment_and_lengths_add_up():
    rng = np.random.default_rng(8)
    layers = random_net(rng, 7, [20, 20])
    pts = rng.normal(size=(40, 7))
    res = path_pieces(layers, pts)
    counts = res.pieces_per_segment()
    assert int(counts.sum()) == res.t_start.shape[0] and int((counts - 1).sum()) == res.num_transitions
    first = torch.cumsum(counts, 0) - counts
    assert torch.all(res.t_start[first] == 0) and torch.all(res.t_end[first + counts - 1] == 1)
    inner = torch.ones_like(res.segment_index, dtype=torch.bool)
    inner[first] = False
    assert torch.equal(res.t_start[inner], res.t_end[torch.nonzero(inner).squeeze(1) - 1])
    assert np.isclose(float(res.length.sum()), float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()))
    assert torch.all(res.opened_by_layer[first] == -1) and torch.all(res.opened_by_layer[inner] >= 0)


def test_pack_unpack_round_trip_across_word_boundaries():
    rng = np.random.default_rng(9)
    for w in (1, 63, 64, 65, 130):
        bits = torch.as_tensor(rng.random((11, w)) < 0.5)
        assert torch.equal(unpack_patterns(pack_bits(bits), [w]), bits)


def test_layers_pack_alike_from_numpy_torch_and_the_device_implementation():
    """pack_layers packs on the host (numpy) for CPU bits; the CUDA path's product packing must give the same words."""
    rng = np.random.default_rng(11)
    widths = [1, 63, 64, 65, 7]
    layer_bits = [rng.random((13, w)) < 0.5 for w in widths]
    words = pack_layers(layer_bits)
    assert words.shape == (13, sum(-(-w // 64) for w in widths)) and words.dtype == torch.int64
    assert torch.equal(words, pack_layers([torch.as_tensor(b) for b in layer_bits]))
    assert torch.equal(words, torch.cat([_pack_on_device(torch.as_tensor(b)) for b in layer_bits], dim=1))
    assert torch.equal(unpack_patterns(words, widths), torch.as_tensor(np.concatenate(layer_bits, axis=1)))
    assert pack_layers([np.zeros((0, 5), dtype=bool)]).shape == (0, 1)


def test_count_distinct_rows_matches_a_python_set_for_every_key_width():
    # Narrow words take the single-key value sort; negative or wide ones (> 63 bits in all) the lexicographic sort.
    rng = np.random.default_rng(10)
    for widths in ([16], [16, 16], [31, 32], [32, 32], [64, 64], [5, 64, 3]):
        bits = torch.as_tensor(rng.random((400, sum(widths))) < 0.5)
        bits = torch.cat([bits, bits[:150]])  # repeats
        words = torch.cat([pack_bits(b) for b in bits.split(widths, dim=1)], dim=1)
        expected = len({tuple(r) for r in words.tolist()})
        assert count_distinct_rows(words) == expected
        assert count_distinct_rows(words[:1]) == 1
    assert count_distinct_rows(torch.zeros((0, 2), dtype=torch.int64)) == 0


def test_compiled_count_distinct_rows_matches_a_python_set():
    # The CPU path's hash-table count: same rows as above, plus negative words, colliding slots and empty input.
    from utils.geometry.regions_kernel import count_distinct_rows as count_compiled

    rng = np.random.default_rng(11)
    for widths in ([16], [16, 16], [32, 32], [64, 64], [5, 64, 3]):
        bits = torch.as_tensor(rng.random((400, sum(widths))) < 0.5)
        bits = torch.cat([bits, bits[:150]])
        words = torch.cat([pack_bits(b) for b in bits.split(widths, dim=1)], dim=1).numpy()
        assert count_compiled(words) == len({tuple(r) for r in words.tolist()})
        assert count_compiled(words[:1]) == 1
    for _ in range(50):
        words = rng.integers(-3, 3, size=(int(rng.integers(1, 200)), int(rng.integers(1, 4)))).astype(np.int64) << 61
        assert count_compiled(words) == len({tuple(r) for r in words.tolist()})
    assert count_compiled(np.zeros((0, 2), dtype=np.int64)) == 0


def test_input_jacobian_matches_autograd():
    rng = np.random.default_rng(10)
    layers = random_net(rng, 5, [9, 6])
    head = (rng.normal(size=(3, 6)), rng.normal(size=3))
    x = torch.as_tensor(rng.normal(size=(4, 5)), dtype=torch.float64)
    jac = input_jacobian(layers, head, activation_patterns(layers, x))

    def f(v):
        h = v
        for W, b in layers:
            h = torch.relu(torch.as_tensor(W) @ h + torch.as_tensor(b))
        return torch.as_tensor(head[0]) @ h + torch.as_tensor(head[1])

    for i in range(4):
        np.testing.assert_allclose(jac[i].numpy(), torch.autograd.functional.jacobian(f, x[i]).numpy(), atol=1e-12)


def test_user_errors_name_the_fix():
    layers = random_net(np.random.default_rng(11), 3, [4])
    with pytest.raises(UserError, match="at least 2 points"):
        path_pieces(layers, np.zeros((1, 3)))
    with pytest.raises(UserError, match=r"shape \(N, 3\)"):
        path_pieces(layers, np.zeros((5, 4)))
    with pytest.raises(UserError, match="NaN or infinite"):
        path_pieces(layers, np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]))
    with pytest.raises(UserError, match="nonzero"):
        line_regions(layers, np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(UserError, match="in order"):
        path_pieces([(np.ones((4, 3)), np.ones(4)), (np.ones((2, 5)), np.ones(2))], np.zeros((3, 3)))
    with pytest.raises(UserError, match="non-empty"):
        path_pieces([], np.zeros((3, 3)))
    for not_numbers in (np.array([["a", "b", "c"]] * 2), [[0.0, 1.0, 2.0], [0.0, 1.0]], [[object()] * 3] * 2):
        with pytest.raises(UserError, match="points must be an array of numbers"):
            path_pieces(layers, not_numbers)
    with pytest.raises(UserError, match="hidden layer 0 weight must be an array of numbers"):
        path_pieces([(np.full((4, 3), "w"), np.ones(4))], np.zeros((3, 3)))


def test_accepts_tensors_of_any_float_dtype():
    rng = np.random.default_rng(12)
    layers = random_net(rng, 4, [8])
    pts = rng.normal(size=(6, 4))
    a = path_pieces(layers, pts)
    b = path_pieces([(torch.tensor(W, dtype=torch.float32).double(), torch.tensor(b)) for W, b in layers],
                    torch.tensor(pts, dtype=torch.float64))
    assert a.num_transitions == b.num_transitions and b.patterns.dtype == torch.int64
    low = [(torch.tensor(W, dtype=torch.float32), torch.tensor(b, dtype=torch.float16)) for W, b in layers]
    low_pts = torch.tensor(pts, dtype=torch.float32)
    c = path_pieces(low, low_pts)
    assert c.t_start.dtype == torch.float64
    # Low-precision inputs are the same numbers as their float64 casts: the same pieces, counted in float64.
    same = path_pieces([(W.double(), b.double()) for W, b in low], low_pts.double())
    assert c.num_transitions == same.num_transitions and c.num_regions == same.num_regions
    assert c.transitions_per_layer == same.transitions_per_layer
    assert torch.equal(c.patterns, same.patterns) and torch.equal(c.segment_index, same.segment_index)
    assert torch.equal(c.t_start, same.t_start) and torch.equal(c.t_end, same.t_end)
    assert same.num_transitions > 0  # the comparison is not vacuous


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(13)
    layers = random_net(rng, 6, [32, 32])
    pts = rng.normal(size=(100, 6))
    cpu, gpu = path_pieces(layers, pts), path_pieces(layers, pts, device="cuda")
    assert gpu.patterns.device.type == "cuda"
    assert cpu.num_transitions == gpu.num_transitions and cpu.num_regions == gpu.num_regions
    lc, lg = line_regions(layers, pts, pts), line_regions(layers, pts, pts, device="cuda")
    assert lc.num_regions.tolist() == lg.num_regions.cpu().tolist()


def test_long_trajectory_through_a_wide_net_runs_in_bounded_memory():
    import resource

    rng = np.random.default_rng(14)
    layers = random_net(rng, 17, [256, 256], bias_std=0.1)
    pts = np.cumsum(rng.normal(size=(10_000, 17)) * 0.3, axis=0)
    pts = (pts - pts.mean(0)) / pts.std(0)
    res = count_path(layers, pts)
    assert res.num_transitions > 10_000
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert peak_gb < 4.0


# ----------------------------------------------------------------------------------------------------------------
# Properties
# ----------------------------------------------------------------------------------------------------------------
nets = st.integers(0, 2**32 - 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=nets, depth=st.integers(1, 3), width=st.integers(2, 16), T=st.integers(2, 8))
def test_reversing_a_path_gives_the_same_counts(seed, depth, width, T):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 10))
    layers = random_net(rng, d, [width] * depth)
    pts = rng.normal(size=(T, d))
    fwd, bwd = path_pieces(layers, pts), path_pieces(layers, pts[::-1].copy())
    assert fwd.num_transitions == bwd.num_transitions
    assert fwd.num_regions == bwd.num_regions
    # At every depth the reversed path crosses the same pieces in reverse order: its segment i is segment T - 2 - i
    # run backwards (t -> 1 - t), and each boundary is made by the same layer's zero (random nets have no ties).
    assert fwd.transitions_per_layer == bwd.transitions_per_layer
    assert bwd.pieces_per_segment().tolist() == fwd.pieces_per_segment().flip(0).tolist()
    assert bwd.segment_index.tolist() == (T - 2 - fwd.segment_index.flip(0)).tolist()
    assert torch.equal(bwd.patterns, fwd.patterns.flip(0))
    np.testing.assert_allclose(bwd.t_start.numpy(), 1 - fwd.t_end.flip(0).numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(bwd.t_end.numpy(), 1 - fwd.t_start.flip(0).numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(bwd.length.numpy(), fwd.length.flip(0).numpy(), rtol=1e-6, atol=1e-12)
    # A piece's opener names the boundary at its start; reversed, that boundary ends the mirrored piece.
    first = torch.cumsum(fwd.pieces_per_segment(), 0) - fwd.pieces_per_segment()
    for i, (lo, n) in enumerate(zip(first.tolist(), fwd.pieces_per_segment().tolist())):
        j = T - 2 - i
        openers_fwd = fwd.opened_by_layer[lo:lo + n].tolist()
        openers_bwd = bwd.opened_by_layer[bwd.segment_index == j].tolist()
        assert openers_bwd == [-1] + openers_fwd[1:][::-1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=nets, depth=st.integers(1, 3), width=st.integers(2, 16), split=st.floats(0.0, 1.0))
def test_splitting_a_segment_adds_no_transition_unless_on_a_boundary(seed, depth, width, split):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 10))
    layers = random_net(rng, d, [width] * depth)
    a, b = rng.normal(size=(2, d))
    whole = segment_pieces(layers, a[None], b[None])
    m = a + split * (b - a)
    halves = path_pieces(layers, np.stack([a, m, b]))
    on_boundary = bool(np.isclose(whole.t_start.numpy()[1:], split, rtol=0.0, atol=1e-7).any())
    if on_boundary:
        assert halves.num_transitions == whole.num_transitions - 1
    else:
        assert halves.num_transitions == whole.num_transitions
    assert halves.num_regions == whole.num_regions


def test_splitting_exactly_on_a_boundary_removes_that_transition():
    rng = np.random.default_rng(15)
    layers = random_net(rng, 4, [10, 10])
    a, b = rng.normal(size=(2, 4)) * 2
    whole = segment_pieces(layers, a[None], b[None])
    assert whole.num_transitions >= 1
    t = float(whole.t_start[1])
    halves = path_pieces(layers, np.stack([a, a + t * (b - a), b]))
    assert halves.num_transitions == whole.num_transitions - 1
    assert halves.num_regions == whole.num_regions


def test_batched_torch_path_matches_the_compiled_kernel(monkeypatch):
    """The CPU path runs the compiled kernel; CUDA runs the batched torch code. Both run here on CPU tensors (the
    torch path forced with COMPILED_ON_CPU = False) and must give the same pieces, patterns and openers."""
    import utils.geometry.regions as regions

    rng = np.random.default_rng(16)
    cases = [random_case(rng) for _ in range(40)]
    wide = random_net(rng, 5, [130, 70], bias_std=0.1)  # patterns across word boundaries (bits 63, 64, 127, ...)
    cases.append((wide, rng.normal(size=(30, 5)), 0))
    compared = 0
    for layers, pts, kind in cases:
        lines = lines_through(pts + rng.normal(size=pts.shape) * 1e-3, pts.mean(0))
        compiled = path_pieces(layers, pts), line_regions(layers, *lines)
        monkeypatch.setattr(regions, "COMPILED_ON_CPU", False)
        batched = path_pieces(layers, pts), line_regions(layers, *lines)
        monkeypatch.setattr(regions, "COMPILED_ON_CPU", True)
        assert compiled[1].num_regions.tolist() == batched[1].num_regions.tolist()
        for c, b in ((compiled[0], batched[0]), (compiled[1].pieces, batched[1].pieces)):
            assert (c.num_transitions, c.num_regions, c.transitions_per_layer) == (
                b.num_transitions, b.num_regions, b.transitions_per_layer)
            assert torch.equal(c.segment_index, b.segment_index) and torch.equal(c.patterns, b.patterns)
            assert torch.equal(c.opened_by_layer, b.opened_by_layer)
            if kind != 2:  # duplicated neurons tie up to round-off, so either may open the transition
                assert torch.equal(c.opened_by_neuron, b.opened_by_neuron)
            finite = torch.isfinite(b.t_start)
            assert torch.equal(finite, torch.isfinite(c.t_start))
            np.testing.assert_allclose(c.t_start[finite].numpy(), b.t_start[finite].numpy(), rtol=1e-9, atol=1e-12)
            compared += c.num_transitions
    assert compared > 1000  # the comparison covers many transitions, not just unbroken segments
