"""Plane geometry shared by the region kernels and the pictures: shoelace areas and centroids of convex polygons,
splitting convex polygons by a line, and the independence test of two vectors, with the tolerances they use.

Polygons are batched and padded: vertices (R, V, 2), counter-clockwise, a polygon with n < V vertices repeats its
last vertex in the slots after n (a repeated vertex adds a zero-length edge, which changes no area or centroid).
Coordinates are plane coordinates; areas are in their squared units.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

Array = Any  # numpy array or torch tensor: the helpers below accept either

# Cross products of a domain's edges (twice its area, and its turns at each vertex) that are smaller than
# CROSS_RTOL * scale^2 count as zero (scale = the largest absolute coordinate): products of coordinates of size
# `scale` carry rounding of a few eps * scale^2 (eps = 2.2e-16), so 1e-12 leaves a wide margin above rounding
# while every domain that is not degenerate (collinear vertices, zero area) passes.
CROSS_RTOL = 1e-12

# Three states span a picture's plane when the part of one difference vector perpendicular to the other is longer
# than SPAN_RTOL times the longer of the two. Below that the circumcircle, and with it the domain, is over 1e6 times
# wider than the states' spread (a picture of nothing), and the circumcentre's rounding error grows like eps / sine.
SPAN_RTOL = 1e-6

# A plane's basis (2, d) is independent "to rounding", as numpy.linalg.matrix_rank decides rank, when the
# perpendicular residual exceeds d * RANK_EPS times the longer row: float64 eps (2.22e-16) rounded up.
RANK_EPS = 2.3e-16


def linearly_independent(u: Array, v: Array, rtol: float) -> bool:
    """Whether vectors u and v (d,) span a plane: v's component perpendicular to u is longer than rtol times the
    longer of the two (False when either is zero). numpy or torch."""
    nu, nv = float((u * u).sum()) ** 0.5, float((v * v).sum()) ** 0.5
    if nu == 0 or nv == 0:
        return False
    r = v - float((u * v).sum()) / (nu * nu) * u
    return float((r * r).sum()) ** 0.5 > rtol * max(nu, nv)


def _row_sums(x: Array) -> Array:
    # numpy sums short rows slowly (~50 ns a row); a product with ones is one BLAS call.
    return x @ np.ones(x.shape[1]) if isinstance(x, np.ndarray) else x.sum(1)


def signed_areas(verts: Array) -> Array:
    """Shoelace areas (R,) of padded polygons (R, V, 2), positive when counter-clockwise; numpy or torch."""
    x, y = verts[..., 0], verts[..., 1]
    # Slices rather than an index list for "next vertex": no index array to build, several times cheaper.
    cross = x[:, :-1] * y[:, 1:] - x[:, 1:] * y[:, :-1]
    return 0.5 * (_row_sums(cross) + x[:, -1] * y[:, 0] - x[:, 0] * y[:, -1])


def area_centroids(verts: np.ndarray) -> np.ndarray:
    """Area centroids (R, 2) of padded polygons (R, V, 2); the vertex mean for a polygon of zero area."""
    x, y = verts[..., 0], verts[..., 1]
    xn, yn = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
    cross = x * yn - xn * y  # padding repeats the last vertex; the closing edge is handled by the roll
    area = signed_areas(verts)
    ok = np.abs(area) > 0
    safe = np.where(ok, area, 1.0)
    cx = ((x + xn) * cross).sum(1) / (6 * safe)
    cy = ((y + yn) * cross).sum(1) / (6 * safe)
    return np.where(ok[:, None], np.stack([cx, cy], 1), verts.mean(1))


def _compact(points: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Keep the flagged slots of each row in order: (R, S, 2), (R, S) -> (R, Vmax, 2) padded, counts (R,)."""
    counts = keep.sum(1)
    vmax = int(counts.max())
    # Stable sort puts kept slots first, in their original order.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    slot = torch.minimum(torch.arange(vmax, device=points.device)[None, :], (counts - 1)[:, None])
    sel = torch.gather(order, 1, slot)
    return torch.gather(points, 1, sel[..., None].expand(-1, -1, 2)), counts


def split_by_lines(verts: Tensor, nv: Tensor, s: Tensor, tol: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split padded convex polygons (R, V, 2) with nv (R,) vertices by one line each, given the line's signed
    distance s (R, V) at every vertex: (parts where s >= 0, their counts, parts where s <= 0, their counts).

    Vertices within tol of their line belong to both parts (no sliver thinner than tol is cut off); a part with
    fewer than 3 vertices is empty or degenerate (the whole polygon lies on the other side). torch, any device."""
    R, V = s.shape
    idx = torch.arange(V, device=s.device)
    valid = idx[None, :] < nv[:, None]
    s = torch.where(s.abs() <= tol, torch.zeros_like(s), s)  # vertices on the line belong to both parts
    nxt = torch.where(idx[None, :] + 1 < nv[:, None], idx[None, :] + 1, torch.zeros_like(valid, dtype=torch.int64))
    s_next = torch.gather(s, 1, nxt)
    v_next = torch.gather(verts, 1, nxt[..., None].expand(-1, -1, 2))
    crossing = valid & (s * s_next < 0)
    frac = torch.where(crossing, s / torch.where(crossing, s - s_next, torch.ones_like(s)), torch.zeros_like(s))
    cut = verts + frac[..., None] * (v_next - verts)
    # Slot 2i holds vertex i, slot 2i + 1 the crossing on edge (i, i + 1), so order around the polygon is kept.
    points = torch.stack([verts, cut], dim=2).reshape(R, 2 * V, 2)
    pos_keep = torch.stack([valid & (s >= 0), crossing], dim=2).reshape(R, 2 * V)
    neg_keep = torch.stack([valid & (s <= 0), crossing], dim=2).reshape(R, 2 * V)
    pos, n_pos = _compact(points, pos_keep)
    neg, n_neg = _compact(points, neg_keep)
    return pos, n_pos, neg, n_neg


def clip_to_halfplane(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """The part (n, 2) of one convex polygon (V, 2) where offset + w @ normal >= 0, exactly (no tolerance)."""
    poly = np.ascontiguousarray(poly, dtype=np.float64)
    s = offset + poly @ np.asarray(normal, dtype=np.float64)
    pos, n_pos, _, _ = split_by_lines(torch.from_numpy(poly)[None], torch.tensor([len(poly)]),
                                      torch.from_numpy(s)[None], 0.0)
    return pos[0, : int(n_pos[0])].numpy()
