"""Tests for utils/geometry/planes.py: exact 2-D partitions of plane domains and the paper's plane construction."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference_regions import plane_partition_ref
from utils.errors import UserError
from utils.geometry.planes import Plane, plane_partition, plane_patterns, plane_through_states
from utils.geometry.regions import input_jacobian
from utils.settings import PLANE_SCALE

torch.set_num_threads(1)


def random_net(rng: np.random.Generator, in_dim: int, widths, act_dim: int = 2, bias_std: float = 0.3):
    layers, prev = [], in_dim
    for w in widths:
        layers.append((rng.normal(size=(w, prev)) * np.sqrt(2.0 / prev), rng.normal(size=w) * bias_std))
        prev = w
    head = (rng.normal(size=(act_dim, prev)), rng.normal(size=act_dim))
    return layers, head


def random_plane_case(rng: np.random.Generator):
    d = int(rng.integers(2, 21))
    widths = [int(rng.integers(2, 13)) for _ in range(int(rng.integers(1, 4)))]
    layers, head = random_net(rng, d, widths)
    plane = plane_through_states(*rng.normal(size=(3, d)), scale=PLANE_SCALE)
    return layers, head, plane


def pattern_set(bits) -> set[bytes]:
    return {bytes(np.asarray(b, dtype=np.uint8)) for b in bits}


def forward(layers, head, x: np.ndarray) -> np.ndarray:
    h = x
    for W, b in layers:
        h = np.maximum(h @ W.T + b, 0.0)
    return h @ head[0].T + head[1]


def points_inside(part, rng: np.random.Generator, per_polygon: int) -> tuple[np.ndarray, np.ndarray]:
    """Random convex combinations of each polygon's vertices (strictly inside): (R * k, 2) points, polygon ids."""
    verts = part.vertices.numpy()
    nv = part.num_vertices.numpy()
    R, V, _ = verts.shape
    w = rng.random((R, per_polygon, V)) + 0.05
    w *= np.arange(V)[None, None, :] < nv[:, None, None]
    w /= w.sum(-1, keepdims=True)
    pts = np.einsum("rkv,rvc->rkc", w, verts).reshape(-1, 2)
    return pts, np.repeat(np.arange(R), per_polygon)


def test_partition_matches_simple_clipping_on_random_nets():
    rng = np.random.default_rng(0)
    for _ in range(60):
        layers, head, plane = random_plane_case(rng)
        part = plane_partition(layers, head, plane)
        ref = plane_partition_ref(layers, plane.origin.numpy(), plane.basis.numpy(), plane.domain.numpy())
        assert part.num_regions == ref["num_regions"]
        assert pattern_set(part.unpacked_patterns().numpy()) == pattern_set(ref["patterns"])
        assert np.isclose(sorted(part.areas.tolist()), sorted(ref["areas"]), rtol=1e-7, atol=1e-12).all()


def test_brute_force_areas_samples_and_grid():
    rng = np.random.default_rng(1)
    for _ in range(25):
        layers, head, plane = random_plane_case(rng)
        part = plane_partition(layers, head, plane)
        # Areas tile the domain.
        assert abs(float(part.areas.sum()) - part.domain_area) / part.domain_area < 1e-9
        assert bool((part.areas > 0).all())
        # Points inside each polygon all have its pattern.
        uv, owner = points_inside(part, rng, 8)
        pats = plane_patterns(layers, plane, uv)
        assert torch.equal(pats, part.patterns[torch.as_tensor(owner)])
        # A dense grid finds no pattern that no polygon has.
        h = float(plane.domain.abs().max())
        g = np.linspace(-h, h, 120)
        grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
        grid_pats = {tuple(r) for r in plane_patterns(layers, plane, grid).tolist()}
        assert grid_pats <= {tuple(r) for r in part.patterns.tolist()}
        # Patterns are distinct: a convex region meets the plane in one convex polygon.
        assert len({tuple(r) for r in part.patterns.tolist()}) == part.num_regions


def test_affine_action_map_matches_the_network_inside_each_polygon():
    rng = np.random.default_rng(2)
    for _ in range(10):
        layers, head, plane = random_plane_case(rng)
        part = plane_partition(layers, head, plane)
        uv, owner = points_inside(part, rng, 3)
        x = plane.to_input(torch.as_tensor(uv)).numpy()
        expected = forward(layers, head, x)
        got = np.einsum("rac,rc->ra", part.action_slope.numpy()[owner], uv) + part.action_offset.numpy()[owner]
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
        # The slope in plane coordinates is the input Jacobian restricted to the plane.
        jac = input_jacobian(layers, head, part.patterns)
        np.testing.assert_allclose((jac @ plane.basis.T).numpy(), part.action_slope.numpy(), atol=1e-10)


def test_one_layer_in_general_position_has_1_plus_n_plus_n_choose_2_regions():
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 20, 40):
        W = rng.normal(size=(n, 2))
        b = rng.normal(size=n) * 0.2
        h = 1e3  # every pairwise intersection lies inside this square
        square = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
        part = plane_partition([(W, b)], None, (np.zeros(2), np.eye(2)), square)
        assert part.num_regions == 1 + n + n * (n - 1) // 2
        assert part.action_slope is None


def test_line_through_a_vertex_and_along_an_edge_cuts_correctly():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    # Neuron 0: the diagonal x = y through two vertices; neuron 1: x = 1, along an edge; neuron 2: x = 0.5.
    W = np.array([[1.0, -1.0], [1.0, 0.0], [1.0, 0.0]])
    b = np.array([0.0, -1.0, -0.5])
    part = plane_partition([(W, b)], None, (np.zeros(2), np.eye(2)), square)
    assert part.num_regions == 4
    assert sorted(np.round(part.areas.numpy(), 12).tolist()) == [0.125, 0.125, 0.375, 0.375]
    assert all(int(n) == 3 or int(n) == 4 for n in part.num_vertices)


def test_degenerate_neurons_duplicate_zero_weight_and_dead_layer():
    rng = np.random.default_rng(4)
    layers, head = random_net(rng, 5, [8, 6, 4])
    W, b = layers[0]
    W[1], b[1] = 3.0 * W[0], 3.0 * b[0]  # same zero line as neuron 0
    plane = plane_through_states(*rng.normal(size=(3, 5)), scale=PLANE_SCALE)
    W[2] -= (W[2] @ plane.basis.numpy().T) @ plane.basis.numpy()  # constant on the plane
    base = plane_partition(layers, head, plane)
    uv, owner = points_inside(base, rng, 5)
    assert torch.equal(plane_patterns(layers, plane, uv), base.patterns[torch.as_tensor(owner)])
    ref = plane_partition_ref(layers, plane.origin.numpy(), plane.basis.numpy(), plane.domain.numpy())
    assert base.num_regions == ref["num_regions"]
    assert pattern_set(base.unpacked_patterns().numpy()) == pattern_set(ref["patterns"])
    bits = base.unpacked_patterns().numpy()
    assert (bits[:, 1] == bits[:, 0]).all()  # the duplicate neuron agrees with its original everywhere
    constant = float(W[2] @ plane.origin.numpy() + b[2])  # neuron 2's value everywhere on the plane
    assert (bits[:, 2] == (constant > 0)).all()
    # A dead middle layer: only the first layer splits, so the polygons are those of the first layer alone (from the
    # reference); the dead layer's bits are all off and the last layer sees zeros, so its bits are b3 > 0.
    dead = [layers[0], (np.zeros((6, 8)), -np.ones(6)), layers[2]]
    part = plane_partition(dead, head, plane)
    first_only = plane_partition_ref([layers[0]], plane.origin.numpy(), plane.basis.numpy(), plane.domain.numpy())
    assert part.num_regions == first_only["num_regions"]
    bits = part.unpacked_patterns().numpy()
    assert pattern_set(bits[:, :8]) == pattern_set(first_only["patterns"])
    assert np.isclose(sorted(part.areas.tolist()), sorted(first_only["areas"]), rtol=1e-7, atol=1e-12).all()
    assert not bits[:, 8:14].any()
    assert (bits[:, 14:] == (layers[2][1] > 0)).all()


def test_plane_through_states_geometry():
    rng = np.random.default_rng(5)
    s = rng.normal(size=(3, 9))
    plane = plane_through_states(*s, scale=PLANE_SCALE)
    np.testing.assert_allclose((plane.basis @ plane.basis.T).numpy(), np.eye(2), atol=1e-12)
    back = plane.to_input(plane.state_coords).numpy()
    np.testing.assert_allclose(back, s, atol=1e-12)
    radii = plane.state_coords.norm(dim=1).numpy()
    np.testing.assert_allclose(radii, radii[0], rtol=1e-10)  # origin = circumcentre
    half = float(plane.domain.abs().max())
    assert np.isclose(2 * half, PLANE_SCALE * 2 * radii[0])
    assert isinstance(plane, Plane)
    with pytest.raises(UserError, match="collinear"):
        plane_through_states(s[0], s[1], 2 * s[1] - s[0], scale=PLANE_SCALE)
    for repeated in ((s[0], s[0], s[1]), (s[0], s[1], s[0]), (s[1], s[0], s[0])):  # two equal states, any order
        with pytest.raises(UserError, match="equal"):
            plane_through_states(*repeated, scale=PLANE_SCALE)
    # numpy coordinates are accepted as well as tensors
    np.testing.assert_allclose(plane.to_input(plane.state_coords.numpy()).numpy(), s, atol=1e-12)


def test_user_errors():
    layers, head = random_net(np.random.default_rng(6), 3, [4])
    plane = plane_through_states(*np.random.default_rng(7).normal(size=(3, 3)), scale=PLANE_SCALE)
    with pytest.raises(UserError, match="convex"):
        plane_partition(layers, head, plane, np.array([[0, 0], [1, 0], [0.2, 0.2], [0, 1.0]]))
    with pytest.raises(UserError, match="match the network input"):
        plane_partition(layers, head, (np.zeros(4), np.eye(4)[:2]), plane.domain)
    with pytest.raises(UserError, match="head"):
        plane_partition(layers, (np.ones((2, 5)), np.ones(2)), plane)
    with pytest.raises(UserError, match="needs domain"):  # an (origin, basis) pair carries no domain
        plane_partition(layers, head, (plane.origin, plane.basis))
    as_pair = plane_partition(layers, head, (plane.origin, plane.basis), plane.domain)
    assert as_pair.num_regions == plane_partition(layers, head, plane).num_regions


def test_clockwise_domain_is_accepted():
    rng = np.random.default_rng(8)
    layers, head = random_net(rng, 4, [6, 6])
    plane = plane_through_states(*rng.normal(size=(3, 4)), scale=PLANE_SCALE)
    a = plane_partition(layers, head, plane)
    b = plane_partition(layers, head, plane, plane.domain.flip(0))
    assert a.num_regions == b.num_regions and bool((b.areas > 0).all())
    # The same partition: the same regions (patterns are distinct) with the same areas.
    area_a = {tuple(p): x for p, x in zip(a.patterns.tolist(), a.areas.tolist())}
    area_b = {tuple(p): x for p, x in zip(b.patterns.tolist(), b.areas.tolist())}
    assert area_a.keys() == area_b.keys() and len(area_a) == a.num_regions
    for p, x in area_a.items():
        assert np.isclose(area_b[p], x, rtol=1e-12, atol=1e-15)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), depth=st.integers(1, 3), width=st.integers(2, 10), grow=st.floats(1.0, 4.0))
def test_scaling_the_domain_up_never_lowers_the_region_count(seed, depth, width, grow):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 8))
    layers, _ = random_net(rng, d, [width] * depth)
    plane = plane_through_states(*rng.normal(size=(3, d)), scale=PLANE_SCALE)
    small = plane_partition(layers, None, plane)
    large = plane_partition(layers, None, plane, plane.domain * grow)
    assert large.num_regions >= small.num_regions
    assert {tuple(r) for r in small.patterns.tolist()} <= {tuple(r) for r in large.patterns.tolist()}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(9)
    layers, head = random_net(rng, 6, [16, 16])
    plane = plane_through_states(*rng.normal(size=(3, 6)), scale=PLANE_SCALE)
    cpu = plane_partition(layers, head, plane)
    gpu = plane_partition(layers, head, plane, device="cuda")
    assert gpu.vertices.device.type == "cuda" and cpu.num_regions == gpu.num_regions


# --------------------------------------------------------------------------------------------------------------
# Degenerate arrangements and the kernel's growing buffers
# --------------------------------------------------------------------------------------------------------------
SQUARE = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
XY_PLANE = (np.zeros(2), np.eye(2))


def assert_matches_reference(layers, plane, domain, rng, per_polygon: int = 4):
    """Same regions and patterns as sequential clipping, areas tiling the domain, sampled interiors on-pattern."""
    part = plane_partition(layers, None, plane, domain)
    origin, basis = (plane.origin.numpy(), plane.basis.numpy()) if isinstance(plane, Plane) else plane
    ref = plane_partition_ref(layers, origin, basis, domain)
    assert part.num_regions == ref["num_regions"]
    assert pattern_set(part.unpacked_patterns().numpy()) == pattern_set(ref["patterns"])
    assert np.isclose(sorted(part.areas.tolist()), sorted(ref["areas"]), rtol=1e-7, atol=1e-12).all()
    assert abs(float(part.areas.sum()) - part.domain_area) / part.domain_area < 1e-9
    assert bool((part.areas > 0).all())
    uv, owner = points_inside(part, rng, per_polygon)
    assert torch.equal(plane_patterns(layers, plane, uv), part.patterns[torch.as_tensor(owner)])
    return part


def lines_through(point, angles, offset_sign: float = 1.0):
    """One layer whose neurons' zero lines all pass through point (2,), at the given normal angles."""
    W = np.stack([np.cos(angles), np.sin(angles)], 1)
    return W, -(W @ np.asarray(point)) * offset_sign


@pytest.mark.parametrize("n_lines", [3, 4, 5, 7])
def test_several_lines_through_one_interior_point(n_lines):
    rng = np.random.default_rng(10 + n_lines)
    angles = np.sort(rng.uniform(0, np.pi, n_lines))
    W, b = lines_through([0.3, -0.2], angles)
    # A second layer in general position, to cut the wedges around the concurrent point again.
    layers = [(W, b), (rng.normal(size=(6, n_lines)), rng.normal(size=6) * 0.3)]
    first = assert_matches_reference(layers[:1], XY_PLANE, SQUARE, rng)
    assert first.num_regions == 2 * n_lines  # n concurrent lines: 2n wedges
    # (In wedges where one first-layer neuron is on, all second-layer lines are parallel.)
    assert_matches_reference(layers, XY_PLANE, SQUARE, rng)


def test_lines_through_a_vertex_crossing_other_lines():
    rng = np.random.default_rng(20)
    square01 = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    # Through corner (1, 1): x = y and x - 2y = -1; through corner (0, 0): 2x = y; crossing them: x + y = 0.7.
    W = np.array([[1.0, -1.0], [1.0, -2.0], [2.0, -1.0], [1.0, 1.0]])
    b = np.array([0.0, 1.0, 0.0, -0.7])
    part = assert_matches_reference([(W, b)], XY_PLANE, square01, rng)
    assert part.num_regions == 9  # 1 + 4 cutting lines + 4 simple interior crossings
    # A second layer whose lines pass through vertices made by the first (the corners of its cells).
    W2 = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    assert_matches_reference([(W, b), (W2, np.array([0.0, 0.0, -1.0]))], XY_PLANE, square01, rng)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zero_bias_nets_on_a_plane_through_the_origin(seed):
    rng = np.random.default_rng(30 + seed)
    d = 6
    layers, _ = random_net(rng, d, [12, 10, 8], bias_std=0.0)
    # Through the input origin every first-layer line meets at u = 0, and so do the later layers' lines, at a vertex
    # of every polygon.
    basis = np.linalg.qr(rng.normal(size=(d, 2)))[0].T
    assert_matches_reference(layers, (np.zeros(d), basis), SQUARE * 2.0, rng)


def test_zero_bias_nets_on_a_general_plane():
    rng = np.random.default_rng(40)
    for _ in range(10):
        d = int(rng.integers(3, 10))
        layers, _ = random_net(rng, d, [10, 10], bias_std=0.0)
        plane = plane_through_states(*rng.normal(size=(3, d)), scale=PLANE_SCALE)
        assert_matches_reference(layers, plane, plane.domain.numpy(), rng)


def test_domain_with_many_vertices_matches_reference():
    # A 150-gon: more vertices than the kernel's first buffers hold for one polygon.
    rng = np.random.default_rng(50)
    angles = np.linspace(0, 2 * np.pi, 150, endpoint=False)
    polygon = 1.5 * np.stack([np.cos(angles), np.sin(angles)], 1)
    # First layer: six lines cutting small caps off the 150-gon, so its middle piece keeps over 64 vertices.
    W1, b1 = lines_through([0.0, 0.0], rng.uniform(0, 2 * np.pi, 6))
    b1 = b1 - 1.48
    first = assert_matches_reference([(W1, b1)], XY_PLANE, polygon, rng)
    assert int(first.num_vertices.max()) > 64
    assert_matches_reference([(W1, b1), (rng.normal(size=(6, 6)), rng.normal(size=6))], XY_PLANE, polygon, rng)


def test_layers_wider_than_one_pattern_word_match_reference():
    # 70 and 130 neurons: a layer's bits span two and three int64 words.
    rng = np.random.default_rng(60)
    layers, head = random_net(rng, 5, [70, 130])
    plane = plane_through_states(*rng.normal(size=(3, 5)), scale=PLANE_SCALE)
    domain = plane.domain.numpy() * 0.1  # a few hundred regions keep the simple reference fast
    part = assert_matches_reference(layers, plane, domain, rng)
    assert part.patterns.shape[1] == 2 + 3
    uv, owner = points_inside(part, rng, 2)
    x = plane.to_input(torch.as_tensor(uv)).numpy()
    with_head = plane_partition(layers, head, plane, domain)
    assert torch.equal(with_head.patterns, part.patterns)
    got = np.einsum("rac,rc->ra", with_head.action_slope.numpy()[owner], uv) + with_head.action_offset.numpy()[owner]
    np.testing.assert_allclose(got, forward(layers, head, x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("factor", [1e-160, 1e160])
def test_a_layer_scaled_far_beyond_float_squares_gives_the_same_partition(factor):
    # Scaling a layer's weights and biases by a positive factor moves no zero line and changes no pattern, also where
    # squares of its values under- or overflow float64.
    rng = np.random.default_rng(90)
    layers, _ = random_net(rng, 4, [8, 8])
    plane = plane_through_states(*rng.normal(size=(3, 4)), scale=PLANE_SCALE)
    base = plane_partition(layers, None, plane)
    scaled = plane_partition([layers[0], (layers[1][0] * factor, layers[1][1] * factor)], None, plane)
    assert scaled.num_regions == base.num_regions > 20
    assert torch.equal(scaled.patterns, base.patterns)
    torch.testing.assert_close(scaled.vertices, base.vertices, rtol=0, atol=1e-12)
