"""utils/geometry/polygons.py: shoelace areas and centroids, splitting by lines, the independence test."""
import numpy as np
import pytest
import torch

from utils.errors import UserError
from utils.geometry.planes import plane_through_states
from utils.geometry.polygons import (SPAN_RTOL, area_centroids, clip_to_halfplane, linearly_independent,
                                     signed_areas, split_by_lines)

SQUARE = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
TRIANGLE_PADDED = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [0.0, 3.0]])  # padding repeats the last vertex


def test_signed_areas_numpy_and_torch_with_padding_and_orientation():
    polys = np.stack([SQUARE, TRIANGLE_PADDED, SQUARE[::-1]])
    expected = [4.0, 4.5, -4.0]
    assert signed_areas(polys).tolist() == expected
    assert signed_areas(torch.from_numpy(polys)).tolist() == expected


def test_area_centroids_and_the_zero_area_fallback():
    flat = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    got = area_centroids(np.stack([SQUARE, TRIANGLE_PADDED, flat]))
    np.testing.assert_allclose(got, [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], atol=1e-15)


def test_split_by_lines_keeps_order_and_shares_vertices_on_the_line():
    verts = torch.from_numpy(np.stack([SQUARE, SQUARE]))
    # Line x = 1 through the first square, x = 2 along the second square's right edge (no cut: on the line).
    s = torch.stack([verts[0, :, 0] - 1.0, verts[1, :, 0] - 2.0])
    pos, n_pos, neg, n_neg = split_by_lines(verts, torch.tensor([4, 4]), s, 1e-12)
    assert n_pos.tolist() == [4, 2] and n_neg.tolist() == [4, 4]
    np.testing.assert_array_equal(pos[0, :4].numpy(), [[1, 0], [2, 0], [2, 2], [1, 2]])
    np.testing.assert_array_equal(neg[0, :4].numpy(), [[0, 0], [1, 0], [1, 2], [0, 2]])
    np.testing.assert_array_equal(neg[1, :4].numpy(), SQUARE)
    assert signed_areas(pos[:1]).tolist() == [2.0] and signed_areas(neg[:1]).tolist() == [2.0]


def test_clip_to_halfplane():
    # keep y <= 1 (1 - y >= 0): the lower half of the square, counter-clockwise from the first kept vertex.
    np.testing.assert_array_equal(clip_to_halfplane(SQUARE, np.array([0.0, -1.0]), 1.0),
                                  [[0, 0], [2, 0], [2, 1], [0, 1]])
    np.testing.assert_array_equal(clip_to_halfplane(SQUARE, np.array([1.0, 0.0]), 5.0), SQUARE)  # all kept
    assert clip_to_halfplane(SQUARE, np.array([1.0, 0.0]), -5.0).shape[0] == 0  # all cut away
    # A vertex exactly on the line is kept once (no duplicate): keep x + y <= 2.
    np.testing.assert_array_equal(clip_to_halfplane(SQUARE, np.array([-1.0, -1.0]), 2.0),
                                  [[0, 0], [2, 0], [0, 2]])


@pytest.mark.parametrize("to", [np.asarray, torch.as_tensor])
def test_linearly_independent(to):
    u = to(np.array([1.0, 0.0, 0.0]))
    assert linearly_independent(u, to(np.array([1.0, 1.0, 0.0])), SPAN_RTOL)
    assert not linearly_independent(u, to(np.array([-3.0, 0.0, 0.0])), SPAN_RTOL)
    assert not linearly_independent(u, to(np.array([1.0, 1e-7, 0.0])), SPAN_RTOL)  # too thin for a picture
    assert linearly_independent(u, to(np.array([1.0, 1e-7, 0.0])), 1e-12)
    assert not linearly_independent(to(np.zeros(3)), u, SPAN_RTOL)


def test_plane_through_states_refuses_two_equal_states():
    s = np.random.default_rng(0).normal(size=(2, 5))
    with pytest.raises(UserError, match="collinear or equal"):
        plane_through_states(s[0], s[0], s[1], scale=1.25)
