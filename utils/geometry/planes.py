"""Exact linear regions of a ReLU policy network on a 2-D plane of input space, and the paper's plane construction.

A plane is x(u) = origin + u @ basis, u in R^2 (plane coordinates), basis (2, d). The domain is a convex polygon
in plane coordinates. The partition is built one layer at a time (docs/design.md, "Algorithms"): within a polygon
the earlier layers' patterns are fixed, so every neuron of the current layer is affine on the plane and its zero
set is a line. Each polygon is clipped by its lines one neuron at a time, in neuron order (``_cut_layer``, a
compiled sequential half-plane clipping kernel); then the layer's pattern is folded into each piece's affine map
(``_fold_layer``). The work runs on the CPU in float64; results are moved to ``device`` at the end.

Conventions: tolerance ``tol = rtol * largest absolute domain coordinate`` in plane distance: a line must have a
vertex farther than tol on each side to cut a polygon (so no sliver thinner than tol is made, and a line through a
vertex or along an edge does not cut); vertices within tol of the line belong to both parts; a polygon's pattern is
the sign (pre-activation > 0) of every hidden neuron at its vertex centroid; patterns are bit-packed as in
``utils.geometry.regions`` (int64 words, layer by layer). Polygons are counter-clockwise; padded vertex slots repeat
the last vertex. The result is that of cutting every polygon by one neuron's line at a time, in neuron order, as the
simple loop implementation ``tests/reference_regions.py`` does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit
from torch import Tensor

from utils.errors import UserError
from utils.geometry.regions import (
    DEFAULT_RTOL,
    ArrayLike,
    HiddenLayers,
    activation_patterns,
    as_float64,
    as_head,
    as_hidden_layers,
    unpack_patterns,
)
from utils.geometry.polygons import (
    CROSS_RTOL,
    RANK_EPS,
    SPAN_RTOL,
    linearly_independent,
)


@dataclass
class Plane:
    """A 2-D plane in input space, x(u) = origin + u @ basis, with a convex domain in plane coordinates."""

    origin: Tensor  # (d,)
    basis: Tensor  # (2, d); orthonormal when built by plane_through_states
    domain: Tensor  # (V, 2) convex polygon, counter-clockwise, plane coordinates
    state_coords: Tensor | None = None  # (3, 2) plane coordinates of the defining states, if any

    def to_input(self, uv: ArrayLike) -> Tensor:
        """Input-space points (N, d) of plane coordinates (N, 2) (a tensor or anything numpy accepts)."""
        return self.origin + as_float64(uv, self.basis.device, "uv") @ self.basis


@dataclass
class PlanePartition:
    """Exact partition of a convex plane domain into convex polygons with one activation pattern each."""

    vertices: Tensor  # (R, Vmax, 2) plane coordinates, counter-clockwise; slots >= num_vertices repeat the last vertex
    num_vertices: Tensor  # (R,) int64
    patterns: Tensor  # (R, W) int64 bit-packed activation patterns (layout as in utils.geometry.regions)
    areas: Tensor  # (R,) float64, in plane coordinates
    action_slope: Tensor | None  # (R, act_dim, 2): d(action mean)/du on each polygon, plane coordinates
    action_offset: Tensor | None  # (R, act_dim): action mean at u = 0 of each polygon's affine map
    layer_widths: tuple[int, ...]
    domain_area: float
    num_regions: int

    def polygon(self, i: int) -> Tensor:
        """Vertices (n_i, 2) of polygon i without padding."""
        return self.vertices[i, : int(self.num_vertices[i])]

    def unpacked_patterns(self) -> Tensor:
        """Patterns as booleans (R, n), neurons in layer order."""
        return unpack_patterns(self.patterns, self.layer_widths)


# --------------------------------------------------------------------------------------------------------------
# Polygons
# --------------------------------------------------------------------------------------------------------------
def _validate_domain(domain: ArrayLike) -> tuple[np.ndarray, float, float]:
    """The domain as a counter-clockwise float64 (V, 2) array, its area and its largest absolute coordinate. A
    handful of vertices: plain Python floats are cheaper here than array operations."""
    d = as_float64(domain, "cpu", "domain").numpy()
    if d.ndim != 2 or d.shape[1] != 2 or d.shape[0] < 3:
        raise UserError(f"domain must be a convex polygon of shape (V >= 3, 2) in plane coordinates, got {d.shape}")
    p = d.tolist()
    n = len(p)
    area = 0.5 * sum(p[i][0] * p[i - n + 1][1] - p[i - n + 1][0] * p[i][1] for i in range(n))
    if area < 0:
        d, p = d[::-1], p[::-1]  # make it counter-clockwise
    edges = [(p[i - n + 1][0] - p[i][0], p[i - n + 1][1] - p[i][1]) for i in range(n)]
    turns = [edges[i][0] * edges[i - n + 1][1] - edges[i][1] * edges[i - n + 1][0] for i in range(n)]
    scale = max(abs(c) for v in p for c in v)
    if abs(area) <= CROSS_RTOL * scale * scale or min(turns) < -CROSS_RTOL * scale * scale:
        raise UserError("domain must be a convex polygon with nonzero area, vertices in order around it")
    return np.ascontiguousarray(d), abs(area), scale


# --------------------------------------------------------------------------------------------------------------
# Compiled kernels (numba, compiled on first use and cached on disk). Polygons are flat: the vertices of polygon i
# are xy[first[i]:first[i + 1]], counter-clockwise. A layer's neuron k is affine on polygon r:
# z[k](u) = z0[r, k] + gx[r, k] u_0 + gy[r, k] u_1.
# --------------------------------------------------------------------------------------------------------------
@njit(cache=True)
def _grow(a, need):
    """a itself when it has at least ``need`` rows, else a copy with room for twice as many."""
    if need <= a.shape[0]:
        return a
    out = np.empty((2 * need,) + a.shape[1:], a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True)
def _distances(xy, start, n, c, gx, gy, tol, s):
    """Signed distances s[:n] of vertices xy[start:start + n] from the line c + gx u_0 + gy u_1 = 0 (zero within tol,
    the same float operations as tests/reference_regions.py); whether the line cuts the polygon: a vertex farther
    than tol on each side."""
    norm = math.hypot(gx, gy)
    if norm == 0.0:  # a neuron constant on the plane never cuts
        return False
    above = below = False
    for i in range(n):
        d = (c + gx * xy[start + i, 0] + gy * xy[start + i, 1]) / norm
        if abs(d) <= tol:
            d = 0.0  # a vertex within tol of the line lies on it and belongs to both parts
        s[i] = d
        above |= d > 0.0
        below |= d < 0.0
    return above and below


@njit(cache=True)
def _append_part(xy, start, n, s, sign, top):
    """Append the part of polygon xy[start:start + n] where sign * s >= 0 at row ``top`` of xy (as split_polygon in
    tests/reference_regions.py: its vertices on that side in order, plus the crossing point of every edge whose ends
    have strictly opposite signs); returns its vertex count, at most 2 n."""
    m = 0
    for i in range(n):
        j = i + 1 if i + 1 < n else 0
        sp, sq = s[i], s[j]
        if sign * sp >= 0.0:
            xy[top + m, 0], xy[top + m, 1] = xy[start + i, 0], xy[start + i, 1]
            m += 1
        if sp * sq < 0.0:
            f = sp / (sp - sq)
            xy[top + m, 0] = xy[start + i, 0] + f * (xy[start + j, 0] - xy[start + i, 0])
            xy[top + m, 1] = xy[start + i, 1] + f * (xy[start + j, 1] - xy[start + i, 1])
            m += 1
    return m


@njit(cache=True)
def _screen_limit(gx, gy, tol):
    """A bound below tol |grad z| by a factor 1 - 1e-9, far more than rounding: a value z of the neuron beyond it
    either way is all that cheap tests of whether its line may cut need (those that pass go to _distances)."""
    g2 = gx * gx + gy * gy
    if not 1e-290 < g2 < 1e290:  # squares that under- or overflow (or a constant neuron): screen nothing out
        return 0.0
    return tol * math.sqrt(g2) * (1.0 - 1e-9)


@njit(cache=True)
def _cut_pieces(pool, s, start, count, after, pieces, top, c, gx, gy, tol):
    """Cut every piece of one polygon's list that the line c + gx u_0 + gy u_1 = 0 cuts into its two parts, which
    take its place in the list, positive side first; returns the new numbers of pieces and of pool rows. Piece j has
    vertices pool[start[j]:start[j] + count[j]] and is followed by piece after[j] (-1 at the end). The caller
    leaves room for every piece to be cut."""
    # A cheap test first, without the divisions of _distances: it passes every piece _distances finds cut. Written
    # out here rather than called: a call per piece would count references to the arrays, costing more than the test.
    limit = _screen_limit(gx, gy, tol)
    j = 0
    while j >= 0:
        a, n, following = start[j], count[j], after[j]
        above = below = False
        for i in range(a, a + n):
            z = c + gx * pool[i, 0] + gy * pool[i, 1]
            above |= z > limit
            below |= z < -limit
        if above and below and _distances(pool, a, n, c, gx, gy, tol, s):
            n_pos = _append_part(pool, a, n, s, 1.0, top)
            n_neg = _append_part(pool, a, n, s, -1.0, top + n_pos)
            start[j], count[j], after[j] = top, n_pos, pieces
            start[pieces], count[pieces], after[pieces] = top + n_pos, n_neg, following
            pieces += 1
            top += n_pos + n_neg
        j = following  # parts made by this line are not cut by it again
    return pieces, top


@njit(cache=True)
def _cut_layer(xy, first, z0, gx, gy, tol):
    """Cut every polygon by the zero lines of one layer's neurons, one neuron at a time in neuron order (a line cuts a
    polygon iff a vertex lies farther than tol on each side). Returns the pieces (xy, first) in the order cutting
    leaves them (the parts of a cut piece take its place, positive side first), each piece's parent polygon, and
    its pattern on the layer: pre-activation > 0 at the piece's vertex centroid, as booleans (R', w) and packed
    into int64 words (R', ceil(w / 64))."""
    R, w = z0.shape
    out_xy = np.empty((2 * xy.shape[0], 2))
    out_first = np.zeros(R + 1, np.int64)
    parent = np.empty(R, np.int64)
    # One polygon's pieces, a linked list in order: piece j has vertices pool[start[j]:start[j] + count[j]] and
    # is followed by piece after[j] (-1 at the end). A cut appends both parts to the pool and abandons the old rows.
    pool = np.empty((64, 2))
    start = np.empty(16, np.int64)
    count = np.empty(16, np.int64)
    after = np.empty(16, np.int64)
    s = np.empty(64)  # signed distances of one piece's vertices; never shorter than the pool
    cutting = np.empty(w, np.int64)
    hi, lo = np.empty(w), np.empty(w)
    n_out = 0
    for r in range(R):
        a, n = first[r], first[r + 1] - first[r]
        if n > pool.shape[0]:
            pool = _grow(pool, n)
            s = _grow(s, pool.shape[0])
        # The lines that may cut polygon r (a line that misses a polygon misses every part of it), by the cheap
        # test of _cut_pieces on the extreme values of every neuron over the vertices (a loop over neurons, which
        # the compiler vectorizes); _cut_pieces then decides exactly.
        hi[:] = -np.inf
        lo[:] = np.inf
        for i in range(a, a + n):
            for k in range(w):
                z = z0[r, k] + gx[r, k] * xy[i, 0] + gy[r, k] * xy[i, 1]
                hi[k] = max(hi[k], z)
                lo[k] = min(lo[k], z)
        m = 0
        for k in range(w):
            limit = _screen_limit(gx[r, k], gy[r, k], tol)
            if hi[k] > limit and lo[k] < -limit:
                cutting[m] = k
                m += 1
        for i in range(n):
            pool[i, 0], pool[i, 1] = xy[a + i, 0], xy[a + i, 1]
        start[0], count[0], after[0], pieces, top = 0, n, -1, 1, n
        for c in range(m):
            # Room for every piece to be cut: two parts of at most twice its vertices each.
            if top + 4 * top > pool.shape[0]:
                pool = _grow(pool, 5 * top)
                s = _grow(s, pool.shape[0])
            if 2 * pieces > start.shape[0]:
                start, count, after = _grow(start, 2 * pieces), _grow(count, 2 * pieces), _grow(after, 2 * pieces)
            k = cutting[c]
            pieces, top = _cut_pieces(pool, s, start, count, after, pieces, top, z0[r, k], gx[r, k], gy[r, k], tol)
        if n_out + pieces + 1 > out_first.shape[0]:
            out_first, parent = _grow(out_first, n_out + pieces + 1), _grow(parent, n_out + pieces + 1)
        if out_first[n_out] + top > out_xy.shape[0]:
            out_xy = _grow(out_xy, out_first[n_out] + top)
        j = 0
        while j >= 0:
            v = out_first[n_out]
            for i in range(count[j]):
                out_xy[v + i, 0], out_xy[v + i, 1] = pool[start[j] + i, 0], pool[start[j] + i, 1]
            out_first[n_out + 1] = v + count[j]
            parent[n_out] = r
            n_out += 1
            j = after[j]
    on = np.empty((n_out, w), np.bool_)
    words = np.zeros((n_out, (w + 63) // 64), np.int64)  # bit k % 64 of word k // 64 (utils.geometry.regions)
    for i in range(n_out):
        r, v, n = parent[i], out_first[i], out_first[i + 1] - out_first[i]
        cx = cy = 0.0
        for j in range(v, v + n):
            cx += out_xy[j, 0]
            cy += out_xy[j, 1]
        cx, cy = cx / n, cy / n
        for k in range(w):
            on[i, k] = z0[r, k] + gx[r, k] * cx + gy[r, k] * cy > 0.0
            if on[i, k]:
                words[i, k // 64] |= np.int64(1) << np.int64(k % 64)
    return out_xy[: out_first[n_out]].copy(), out_first[: n_out + 1].copy(), parent[:n_out].copy(), on, words


@njit(cache=True)
def _fold_layer(on, parent, z0, gx, gy, Wt, b):
    """The next affine map on every piece. With the layer's pattern fixed, the layer's output on piece i is
    on[i] * z[parent[i]], affine in u, so the next layer's (or the head's) values are
        z_next[i] = b + (on[i] * z0[p]) @ Wt at u = 0,  gx_next[i] = (on[i] * gx[p]) @ Wt,  gy_next likewise.
    A piece of the same parent as the piece before it (cutting leaves neighbours next to each other) starts from
    that piece's result and adds the rows of Wt of the neurons whose state differs, when they are fewer than its
    neurons that are on."""
    R, w = on.shape
    w2 = Wt.shape[1]
    z_next, gx_next, gy_next = np.empty((R, w2)), np.empty((R, w2)), np.empty((R, w2))
    for i in range(R):
        p = parent[i]
        from_previous = False
        if i > 0 and parent[i - 1] == p:
            n_on = n_diff = 0
            for k in range(w):
                n_on += on[i, k]
                n_diff += on[i, k] != on[i - 1, k]
            from_previous = n_diff < n_on
        for j in range(w2):
            if from_previous:
                z_next[i, j], gx_next[i, j], gy_next[i, j] = z_next[i - 1, j], gx_next[i - 1, j], gy_next[i - 1, j]
            else:
                z_next[i, j], gx_next[i, j], gy_next[i, j] = b[j], 0.0, 0.0
        for k in range(w):
            sign = 0.0
            if from_previous and on[i, k] != on[i - 1, k]:
                sign = 1.0 if on[i, k] else -1.0
            elif not from_previous and on[i, k]:
                sign = 1.0
            if sign != 0.0:
                zk, xk, yk = sign * z0[p, k], sign * gx[p, k], sign * gy[p, k]
                for j in range(w2):
                    z_next[i, j] += zk * Wt[k, j]
                    gx_next[i, j] += xk * Wt[k, j]
                    gy_next[i, j] += yk * Wt[k, j]
    return z_next, gx_next, gy_next


@njit(cache=True)
def _padded(xy, first):
    """Flat polygons as padded vertices (R, Vmax, 2), the last vertex repeated, their counts (R,) and shoelace
    areas (R,)."""
    R = first.shape[0] - 1
    n = first[1:] - first[:-1]
    verts = np.empty((R, n.max(), 2))
    areas = np.zeros(R)
    for i in range(R):
        a = first[i]
        for j in range(verts.shape[1]):
            verts[i, j, 0], verts[i, j, 1] = xy[a + min(j, n[i] - 1), 0], xy[a + min(j, n[i] - 1), 1]
        for j in range(n[i]):
            k = j + 1 if j + 1 < n[i] else 0
            areas[i] += xy[a + j, 0] * xy[a + k, 1] - xy[a + k, 0] * xy[a + j, 1]
    return verts, n, 0.5 * areas


def _partition_arrays(layers, origin, basis, dom, tol, head):
    """Padded polygons (R, Vmax, 2), their vertex counts and areas, packed patterns (R, W) and, with a head, the
    action map's offset (R, act) and slope (R, act, 2) of the partition of ``dom``; numpy, layers as [(Wt, b)]."""
    xy, first = dom, np.array([0, dom.shape[0]])
    # On the domain the first layer is affine in u: z(u) = (origin + u @ basis) @ Wt + b.
    Wt, b = layers[0]
    z0, gx, gy = (origin @ Wt + b)[None], (basis[0] @ Wt)[None], (basis[1] @ Wt)[None]
    words: list[np.ndarray] = []
    for i in range(len(layers)):
        xy, first, parent, on, layer_words = _cut_layer(xy, first, z0, gx, gy, tol)
        words = [np.take(x, parent, 0) for x in words] + [layer_words]
        following = layers[i + 1] if i + 1 < len(layers) else head
        if following is not None:
            z0, gx, gy = _fold_layer(on, parent, z0, gx, gy, *following)
    offset = slope = None
    if head is not None:
        offset, slope = z0, np.stack([gx, gy], 2)
    return (*_padded(xy, first), np.concatenate(words, 1), offset, slope)


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------
def plane_partition(
    hidden_layers: HiddenLayers,
    head: tuple[ArrayLike, ArrayLike] | None,
    plane: Plane | tuple[ArrayLike, ArrayLike],
    domain: ArrayLike | None = None,
    *,
    device: torch.device | str = "cpu",
    rtol: float = DEFAULT_RTOL,
) -> PlanePartition:
    """Exact partition of a convex ``domain`` (V, 2) in plane coordinates into the network's linear regions.

    Returns the convex polygons (plane coordinates, counter-clockwise), their packed activation patterns and areas
    (plane units), and with a ``head`` the affine action map on each polygon. The work is float64 on the CPU, one
    layer at a time, every polygon clipped by the layer's zero lines one neuron at a time (see the module
    docstring); the results are then moved to ``device``. Raises UserError for bad shapes, a dependent basis or a
    non-convex domain.
    """
    device = torch.device(device)
    layers = as_hidden_layers(hidden_layers, "cpu")
    d = layers[0][0].shape[1]
    if isinstance(plane, Plane):
        origin, basis = plane.origin, plane.basis
        if domain is None:
            domain = plane.domain
    else:
        if not isinstance(plane, (list, tuple)) or len(plane) != 2:
            raise UserError("plane must be a Plane or an (origin (d,), basis (2, d)) pair")
        origin, basis = plane
    if domain is None:  # an (origin, basis) pair has no domain of its own
        raise UserError("plane_partition of an (origin, basis) pair needs domain=(V, 2) polygon in plane "
                        "coordinates; pass one, or pass a Plane, whose own domain is the default")
    origin = as_float64(origin, "cpu", "plane origin").numpy()
    basis = as_float64(basis, "cpu", "plane basis").numpy()
    if origin.shape != (d,) or basis.shape != (2, d):
        raise UserError(
            f"plane origin must have shape ({d},) and basis (2, {d}) to match the network input, got "
            f"{tuple(origin.shape)} and {tuple(basis.shape)}"
        )
    if not linearly_independent(basis[0], basis[1], d * RANK_EPS):
        raise UserError("the plane's two basis vectors must be linearly independent")
    dom, domain_area, scale = _validate_domain(domain)
    if head is not None:
        W_out, b_out = as_head(head, layers[-1][0].shape[0], "cpu")
        head = (np.ascontiguousarray(W_out.numpy().T), b_out.numpy())
    layers_t = [(np.ascontiguousarray(W.numpy().T), b.numpy()) for W, b in layers]
    verts, nv, areas, words, offset, slope = _partition_arrays(layers_t, origin, basis, dom, rtol * scale, head)

    def out(x: np.ndarray | Tensor | None) -> Tensor | None:
        if x is None:
            return None
        x = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
        return x if device.type == "cpu" else x.to(device)

    return PlanePartition(
        vertices=out(verts),
        num_vertices=out(nv),
        patterns=out(words),
        areas=out(areas),
        action_slope=out(slope),
        action_offset=out(offset),
        layer_widths=tuple(W.shape[0] for W, _ in layers),
        domain_area=domain_area,
        num_regions=int(nv.shape[0]),
    )


def plane_patterns(
    hidden_layers: HiddenLayers, plane: Plane | tuple[ArrayLike, ArrayLike], uv: ArrayLike, *, device: torch.device | str = "cpu"
) -> Tensor:
    """Packed activation patterns (N, W) of points given in plane coordinates (N, 2)."""
    origin, basis = (plane.origin, plane.basis) if isinstance(plane, Plane) else plane
    origin = as_float64(origin, device, "plane origin")
    basis = as_float64(basis, device, "plane basis")
    return activation_patterns(hidden_layers, origin + as_float64(uv, device, "uv") @ basis, device=device)


def plane_through_states(
    s1: ArrayLike, s2: ArrayLike, s3: ArrayLike, scale: float, *, device: torch.device | str = "cpu"
) -> Plane:
    """The plane through three input-space states, centred at their circumcentre, with an orthonormal basis; domain =
    a square whose side is ``scale`` times the circumcircle's diameter."""
    p1, p2, p3 = (as_float64(s, device, name) for s, name in ((s1, "s1"), (s2, "s2"), (s3, "s3")))
    if p1.ndim != 1 or p1.shape != p2.shape or p1.shape != p3.shape:
        raise UserError("s1, s2, s3 must be three states of the same shape (d,)")
    if not scale > 0:
        raise UserError(f"scale must be positive, got {scale}")
    u, v = p2 - p1, p3 - p1
    if not linearly_independent(u, v, SPAN_RTOL):
        raise UserError("the three states are (nearly) collinear or equal; pick three states that span a plane")
    e1 = u / u.norm()
    w = v - (v @ e1) * e1
    e2 = w / w.norm()
    basis = torch.stack([e1, e2])
    # 2-D coordinates relative to s1, then the circumcentre by the standard formula.
    q = torch.stack([torch.zeros(2, dtype=torch.float64, device=p1.device), basis @ u, basis @ v])
    bx, by, cx, cy = q[1, 0], q[1, 1], q[2, 0], q[2, 1]
    den = 2 * (bx * cy - by * cx)
    center = torch.stack([
        (cy * (bx * bx + by * by) - by * (cx * cx + cy * cy)) / den,
        (bx * (cx * cx + cy * cy) - cx * (bx * bx + by * by)) / den,
    ])
    coords = q - center
    radius = float(coords[0].norm())
    h = scale * radius
    domain = torch.tensor([[-h, -h], [h, -h], [h, h], [-h, h]], dtype=torch.float64, device=p1.device)
    return Plane(origin=p1 + center @ basis, basis=basis, domain=domain, state_coords=coords)
