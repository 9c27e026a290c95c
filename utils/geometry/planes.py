"""Exact linear regions of a ReLU policy network on a 2-D plane of input space, and the paper's plane construction.

A plane is x(u) = origin + u @ basis, u in R^2 (plane coordinates), basis (2, d). The domain is a convex polygon
in plane coordinates. The partition is built one layer at a time over all polygons at once (docs/design.md,
"Algorithms"): within a polygon the earlier layers' patterns are fixed, so every neuron of the current layer is
affine on the plane and its zero set is a line. A layer cuts every polygon by all the lines that cross it at once
(``_arrange_layer``): the polygon's cells in the arrangement of those lines are found by vertex enumeration --
candidate vertices are the polygon's corners, the crossings of lines with its edges and the pairwise
intersections of its lines strictly inside it; each candidate's signs on the polygon's lines (zero within tol)
name the cells it is a corner of; candidates are grouped by exact sign keys and each group ordered
counter-clockwise around its mean. Arrays are padded per batch to the most lines crossing one polygon, so when
that count varies much the crossed polygons are processed in buckets of similar counts (``_buckets``). Polygons whose geometry is too close to the tolerance for this to be certain
to agree with cutting one line at a time (derived vertices near tol from a line or edge, nearly parallel lines,
edges about tol long, more than ``_MAX_ZEROS`` lines through one candidate) are cut instead by the sequential
fallback ``_cut_layer``: in rounds, each polygon by its lowest-index crossing line (half-plane clipping of
padded convex polygons, batched: ``utils.geometry.polygons.split_by_lines``). After a layer, its pattern is
folded into each polygon's affine map.

The arrangement step is written once against a tiny array interface: numpy on the CPU (small ops are several
times cheaper there than torch ops) and torch on other devices (``_NumpyOps`` / ``_TorchOps``).

Conventions: float64 on ``device``; tolerance ``tol = rtol * largest absolute domain coordinate`` in plane
distance: a line must have a vertex farther than tol on each side to cut a polygon (so no sliver thinner than
tol is made, and a line through a vertex or along an edge does not cut); a polygon's pattern is the sign
(pre-activation > 0) of every hidden neuron at its vertex centroid; patterns are bit-packed as in
``utils.geometry.regions`` (int64 words, layer by layer). Polygons are counter-clockwise; padded vertex slots repeat the
last vertex. The result equals cutting every polygon by one neuron's line at a time, in neuron order
(``tests/reference_regions.py``).
"""
from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

import numpy as np
import torch
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
    pack_layers,
    unpack_patterns,
)
from utils.geometry.polygons import (
    CROSS_RTOL,
    RANK_EPS,
    SPAN_RTOL,
    linearly_independent,
    signed_areas,
    split_by_lines,
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
def _validate_domain(domain: ArrayLike, device: torch.device | str) -> tuple[Tensor, float]:
    """The domain as a counter-clockwise float64 (V, 2) tensor on ``device``, and its largest absolute coordinate.
    Checked on the host in numpy: it has a handful of vertices, and device ops would cost more than the work."""
    d = as_float64(domain, "cpu", "domain").numpy()
    if d.ndim != 2 or d.shape[1] != 2 or d.shape[0] < 3:
        raise UserError(f"domain must be a convex polygon of shape (V >= 3, 2) in plane coordinates, got {d.shape}")
    area = float(signed_areas(d[None])[0])
    if area < 0:
        d = d[::-1]  # make it counter-clockwise
    edges = np.concatenate([d[1:], d[:1]]) - d
    nxt = np.concatenate([edges[1:], edges[:1]])
    turn = edges[:, 0] * nxt[:, 1] - edges[:, 1] * nxt[:, 0]
    scale = float(np.abs(d).max())
    if abs(area) <= CROSS_RTOL * scale * scale or bool((turn < -CROSS_RTOL * scale * scale).any()):
        raise UserError("domain must be a convex polygon with nonzero area, vertices in order around it")
    return torch.from_numpy(np.ascontiguousarray(d)).to(device), scale


def _cut_layer(
    verts: Tensor, nv: Tensor, z0: Tensor, grad: Tensor, tol: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Sequential fallback: cut every polygon by the zero lines of one layer's neurons, in rounds (each round cuts
    each polygon by its lowest-index crossing line); torch tensors. Returns verts, counts and each piece's parent."""
    norm = torch.linalg.vector_norm(grad, dim=1)  # (R, w)
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    # Signed distance in plane coordinates: z / ||grad z||; a neuron constant on a polygon never cuts it.
    z0n = torch.where(norm > 0, z0 / safe, torch.zeros_like(z0))
    gn = grad / safe[:, None, :]
    parent = torch.arange(verts.shape[0], device=verts.device)
    done: list[tuple[Tensor, Tensor, Tensor]] = []
    while verts.shape[0] > 0:
        dist = torch.baddbmm(z0n[:, None, :], verts, gn)  # (Ra, V, k) signed vertex distances
        crosses = (dist.amax(1) > tol) & (dist.amin(1) < -tol)
        n_cross = crosses.sum(1)
        has_cut = n_cross > 0
        finished = ~has_cut
        if bool(finished.any()):
            done.append((verts[finished], nv[finished], parent[finished]))
        if not bool(has_cut.any()):
            break
        crosses, n_cross, d = crosses[has_cut], n_cross[has_cut], dist[has_cut]
        # Keep only the crossing neurons' columns (lowest index first): lines that miss a polygon miss its parts.
        kmax = int(n_cross.max())
        cols = torch.sort((~crosses).to(torch.int8), dim=1, stable=True).indices[:, :kmax]
        s = torch.gather(d, 2, cols[:, None, :1].expand(-1, d.shape[1], 1)).squeeze(2)
        pos, n_pos, neg, n_neg = split_by_lines(verts[has_cut], nv[has_cut], s, tol)
        vmax = max(pos.shape[1], neg.shape[1])
        verts = torch.cat([_pad_slots(_TorchOps, pos, vmax), _pad_slots(_TorchOps, neg, vmax)])
        nv = torch.cat([n_pos, n_neg])
        parent = parent[has_cut].repeat(2)
        # The cutting neuron (column 0) is done; padded columns get a zero function, which never crosses.
        keep = cols[:, 1:]
        live = (torch.arange(1, kmax, device=verts.device)[None, :] < n_cross[:, None]).to(z0n)
        z0n = torch.gather(z0n[has_cut], 1, keep) * live
        gn = torch.gather(gn[has_cut], 2, keep[:, None, :].expand(-1, 2, -1)) * live[:, None, :]
        z0n, gn = z0n.repeat(2, 1), gn.repeat(2, 1, 1)
    vmax = max(v.shape[1] for v, _, _ in done)
    return (
        torch.cat([_pad_slots(_TorchOps, v, vmax) for v, _, _ in done]),
        torch.cat([n for _, n, _ in done]),
        torch.cat([p for _, _, p in done]),
    )


# --------------------------------------------------------------------------------------------------------------
# Array backends: numpy on the CPU (a small op costs ~1 us there, a torch op 3-10 us), torch elsewhere. The
# arrangement code below is written once against this interface.
# --------------------------------------------------------------------------------------------------------------
_SERIAL_GEMM = 1 << 18  # m n k below which OpenBLAS runs a product on one thread (measured: threads from ~2^19)


@functools.lru_cache(maxsize=None)
def _triu_pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    # Cached: np.triu_indices takes ~70 us for k = 32, a layer's arrangement needs it once or twice.
    i, j = np.triu_indices(k, 1)
    i.flags.writeable = j.flags.writeable = False
    return i, j


class _NumpyOps:
    """The few array operations whose numpy and torch spellings differ; numpy version (CPU)."""

    float64, int64 = np.float64, np.int64

    @staticmethod
    def arange(n: int, like):
        return np.arange(n)

    @staticmethod
    def where(c, a, b):
        return np.where(c, a, b)

    @staticmethod
    def amax(x, axis: int):
        # numpy reduces a short trailing axis row by row (~50 ns a row); elementwise over its slices is faster.
        return functools.reduce(np.maximum, np.moveaxis(x, axis, 0)) if x.shape[axis] <= 16 else x.max(axis)

    @staticmethod
    def amin(x, axis: int):
        return functools.reduce(np.minimum, np.moveaxis(x, axis, 0)) if x.shape[axis] <= 16 else x.min(axis)

    @staticmethod
    def nonzero(mask):
        return np.nonzero(mask)

    @staticmethod
    def cat(xs, axis: int = 0):
        return np.concatenate(xs, axis)

    @staticmethod
    def stack(xs, axis: int = 0):
        return np.stack(xs, axis)

    @staticmethod
    def cumsum(x, axis: int = 0):
        return np.cumsum(x, axis)

    @staticmethod
    def repeat(x, counts):
        return np.repeat(x, counts)

    @staticmethod
    def argsort(x):
        return np.argsort(x, kind="stable")

    @staticmethod
    def rows(x, idx):
        """x[idx] for a 1-D index: np.take is ~10x faster than fancy indexing when x has several dimensions."""
        return np.take(x, idx, 0)

    @staticmethod
    def pairs(k: int, like):
        """Index pairs (i, j), i < j < k, ordered by i then j."""
        return _triu_pairs(k)

    @staticmethod
    def bincount(x, n: int):
        return np.bincount(x, minlength=n)

    @staticmethod
    def zeros_bool(n: int, like):
        return np.zeros(n, dtype=bool)

    @staticmethod
    def to(x, dtype):
        return x.astype(dtype)

    @staticmethod
    def segment_sum(x, starts, group):
        return np.add.reduceat(x, starts, axis=0)

    @staticmethod
    def segment_common(zero_words, src, starts, group):
        """Per group of rows src (sorted by group) of zero_words (N, nw), whether all rows share a bit: (G,) bool."""
        common = np.bitwise_and.reduceat(np.take(zero_words, src, 0), starts, axis=0)
        return functools.reduce(np.logical_or, [common[:, i] != 0 for i in range(common.shape[1])])

    @staticmethod
    def ceil_log2(k):
        return np.ceil(np.log2(k)).astype(np.int64)

    @staticmethod
    def sum_slots(verts):
        """Sum over the vertex axis of (R, V, 2): as one small matrix product, ~10x faster than numpy's sum(1) on
        this layout (a reduction over a middle axis with a 2-wide inner axis)."""
        return verts.reshape(verts.shape[0], -1) @ np.tile(np.eye(2), (verts.shape[1], 1))

    @staticmethod
    def matmul(a, b):
        """a @ b for 2-D arrays, in row blocks of at most _SERIAL_GEMM multiply-adds. OpenBLAS threads larger
        products, and its threads stall when the other cores are busy (2-3x slower, measured) and ignore
        torch.set_num_threads; one thread in blocks is as fast as torch's MKL here for the big thin products of
        this module and about 2x faster for the small ones."""
        rows = max(1, _SERIAL_GEMM // max(1, a.shape[1] * b.shape[1]))
        if a.shape[0] <= rows:
            return a @ b
        return np.concatenate([a[i : i + rows] @ b for i in range(0, a.shape[0], rows)])

    @staticmethod
    def from_tensor(t: Tensor):
        return t.numpy()

    @staticmethod
    def to_tensor(x) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(x))


class _TorchOps:
    """The same operations on torch tensors (any device)."""

    float64, int64 = torch.float64, torch.int64

    @staticmethod
    def arange(n: int, like):
        return torch.arange(n, device=like.device)

    @staticmethod
    def where(c, a, b):
        return torch.where(c, a, b)

    @staticmethod
    def amax(x, axis: int):
        return x.amax(axis)

    @staticmethod
    def amin(x, axis: int):
        return x.amin(axis)

    @staticmethod
    def nonzero(mask):
        return torch.nonzero(mask, as_tuple=True)

    @staticmethod
    def cat(xs, axis: int = 0):
        return torch.cat(xs, axis)

    @staticmethod
    def stack(xs, axis: int = 0):
        return torch.stack(xs, axis)

    @staticmethod
    def cumsum(x, axis: int = 0):
        return torch.cumsum(x, axis)

    @staticmethod
    def repeat(x, counts):
        return torch.repeat_interleave(x, counts)

    @staticmethod
    def argsort(x):
        return torch.argsort(x, stable=True)

    @staticmethod
    def rows(x, idx):
        return x[idx]

    @staticmethod
    def pairs(k: int, like):
        i, j = torch.triu_indices(k, k, 1, device=like.device)
        return i, j

    @staticmethod
    def bincount(x, n: int):
        return torch.bincount(x, minlength=n)

    @staticmethod
    def zeros_bool(n: int, like):
        return torch.zeros(n, dtype=torch.bool, device=like.device)

    @staticmethod
    def to(x, dtype):
        return x.to(dtype)

    @staticmethod
    def segment_sum(x, starts, group):
        out = torch.zeros((starts.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
        return out.index_add_(0, group, x)

    @staticmethod
    def segment_common(zero_words, src, starts, group):
        # No bitwise-and scatter in torch: unpack the bits and take their minimum per group.
        bit = torch.arange(_WORD, device=zero_words.device)
        x = ((zero_words[src][:, :, None] >> bit) & 1).to(torch.int8).reshape(src.shape[0], -1)
        out = torch.ones((starts.shape[0], x.shape[1]), dtype=torch.int8, device=x.device)
        return out.scatter_reduce_(0, group[:, None].expand(x.shape), x, "amin").bool().any(1)

    @staticmethod
    def ceil_log2(k):
        return torch.ceil(torch.log2(k.to(torch.float64))).to(torch.int64)

    @staticmethod
    def sum_slots(verts):
        return verts.sum(1)

    @staticmethod
    def matmul(a, b):
        return a @ b

    @staticmethod
    def from_tensor(t: Tensor):
        return t

    @staticmethod
    def to_tensor(x) -> Tensor:
        return x


def _ops_for(device: torch.device) -> type[_NumpyOps] | type[_TorchOps]:
    return _NumpyOps if device.type == "cpu" else _TorchOps


def _lexsort(o, keys):
    """Stable order sorting rows by several keys, least significant first (the last key is the primary one)."""
    order = o.argsort(keys[0])
    for k in keys[1:]:
        order = order[o.argsort(k[order])]
    return order


# A derived vertex (edge crossing, line intersection) whose distance to a line or an edge lies within this factor of
# the tolerance, either way, is ambiguous: sequential clipping might decide it differently, so its polygon is cut
# by the sequential fallback instead. Coincidences up to rounding (distance <= tol / _BAND) are exact ones.
_BAND = 1e3
# A candidate vertex on more than this many of a polygon's lines (lines concurrent there) also goes to the fallback:
# it would take 2^zeros sign patterns.
_MAX_ZEROS = 4
_WORD = 52  # bits of a sign pattern per float64 key word (exact integers)
# Two of a polygon's lines whose unit normals have |sine| at most this are treated as parallel and the polygon goes to
# the fallback: their intersection's rounding error grows like eps * scale / sine and reaches the tolerance
# (DEFAULT_RTOL * scale = 1e-9 scale) near sine ~ 2e-7; 1e-6 keeps a factor of 5 below it.
_PARALLEL_SINE = 1e-6


def _arrange_layer(o, verts, nv, z0, grad, tol: float):
    """Cut every polygon (P, V, 2) by all zero lines of one layer at once, by vertex enumeration of each polygon's
    line arrangement: returns [(vertices, counts, parent polygon)] for the uncut polygons and the new cells, and
    the ids of polygons left to the sequential fallback."""
    P = verts.shape[0]
    gx, gy = grad[:, 0], grad[:, 1]  # (P, w)
    norm = (gx * gx + gy * gy) ** 0.5
    safe = o.where(norm > 0, norm, 1.0)
    # Signed distance in plane coordinates: z / ||grad z||; a neuron constant on a polygon never cuts it.
    zn = o.where(norm > 0, z0 / safe, 0.0)
    gxn, gyn = gx / safe, gy / safe
    # (P, V, w): the long neuron axis last, so the elementwise ops and the reductions over vertices run fast.
    vx, vy = verts[..., 0][:, :, None], verts[..., 1][:, :, None]
    dist = zn[:, None, :] + vx * gxn[:, None, :] + vy * gyn[:, None, :]
    crosses = (o.amax(dist, 1) > tol) & (o.amin(dist, 1) < -tol)
    ncross = crosses.sum(1)
    K = int(ncross.max())
    if K == 0:
        return [(verts, nv, o.arange(P, verts))], o.arange(0, verts)
    (hit,) = o.nonzero(ncross > 0)
    (untouched,) = o.nonzero(ncross == 0)
    parts, fallback = [(o.rows(verts, untouched), nv[untouched], untouched)], []
    for ids in _buckets(o, hit, ncross[hit]):
        nvb = nv[ids]
        vmax = int(nvb.max())  # the bucket's polygons may have fewer vertices than the widest polygon
        cells, n, parent, flagged = _arrange_cells(
            o, o.rows(verts, ids)[:, :vmax], nvb, o.rows(crosses, ids), ncross[ids], o.rows(zn, ids),
            o.rows(gxn, ids), o.rows(gyn, ids), tol,
        )
        parts.append((cells, n, ids[parent]))
        fallback.append(ids[flagged])
    return parts, o.cat(fallback)


# Pairwise-intersection arrays of a batch are padded to its largest number K of lines crossing one polygon, so a
# batch of H polygons costs about H K^2 (plus a fixed cost per pass, in the same units): crossed polygons are
# processed in buckets of similar k when that is cheaper.
_PASS_COST = 8000  # measured: c32,32's second layer (H K^2 ~ 14k) is no faster bucketed


def _buckets(o, hit, k):
    """Crossed polygons' ids (hit, with k crossing lines each) in buckets of k in (2^(i-1), 2^i], adjacent buckets
    merged while one pass over the merged bucket is estimated cheaper than two."""
    K = int(k.max())
    if hit.shape[0] * K * K <= 2 * _PASS_COST:
        return [hit]
    level = o.ceil_log2(k)
    counts = [int(c) for c in o.bincount(level, int(level.max()) + 1)]
    groups = []  # [first level, last level, polygons, work]
    for lv, c in enumerate(counts):
        if c == 0:
            continue
        kl = min(2**lv, K)
        if groups:
            g = groups[-1]
            merged = (g[2] + c) * kl * kl
            if merged <= g[3] + c * kl * kl + _PASS_COST:
                groups[-1] = [g[0], lv, g[2] + c, merged]
                continue
        groups.append([lv, lv, c, c * kl * kl])
    if len(groups) == 1:
        return [hit]
    return [hit[o.nonzero((level >= g[0]) & (level <= g[1]))[0]] for g in groups]


def _arrange_cells(o, vh, nvh, crosses, ncross, zn, gxn, gyn, tol: float):
    """Arrangement cells of H crossed polygons (H, V, 2) given which lines cross them (H, w) and the normalized line
    coefficients zn, gxn, gyn (H, w): (cells (G, Vmax, 2), counts (G,), polygon of each cell, ids of polygons that
    need the fallback), polygon ids local to this batch. Row gathers go through o.rows and flat 1-D indices: numpy's
    multi-dimensional fancy indexing is ~10x slower than np.take."""
    H, V, w = vh.shape[0], vh.shape[1], zn.shape[1]
    lo, hi = tol / _BAND, tol * _BAND
    K = int(ncross.max())
    # Each polygon's crossing lines first (padding: the constant +inf, which neither crosses nor vanishes).
    cols = o.argsort(o.to(~crosses, o.int64))[:, :K]  # (H, K); argsort is along the last axis
    live = o.arange(K, vh)[None, :] < ncross[:, None]
    line = (o.arange(H, vh) * w)[:, None] + cols  # flat indices into (H, w)
    zl = o.where(live, zn.reshape(-1)[line], float("inf"))
    gxl = o.where(live, gxn.reshape(-1)[line], 0.0)
    gyl = o.where(live, gyn.reshape(-1)[line], 0.0)
    # Signed vertex distances (H, V, K): the same float operations as the layer's crossing test, so the same values.
    s = zl[:, None, :] + vh[..., 0:1] * gxl[:, None, :] + vh[..., 1:2] * gyl[:, None, :]
    j = o.arange(V, vh)[None, :]
    valid = j < nvh[:, None]
    nxt = o.where(j + 1 < nvh[:, None], j + 1, 0)  # (H, V)
    sz = o.where(abs(s) <= tol, 0.0, s)  # vertices within tol of a line are on it (as in sequential clipping)
    flag = o.zeros_bool(H, vh)  # polygons left to the sequential fallback
    # Vertex rows: row r is vertex r % V of polygon r // V.
    vrow, szrow = vh.reshape(H * V, 2), sz.reshape(H * V, K)
    nxt_row = ((o.arange(H, vh) * V)[:, None] + nxt).reshape(-1)

    # (a) the polygons' own vertices.
    (ra,) = o.nonzero(valid.reshape(-1))
    ha, pa, sa = ra // V, o.rows(vrow, ra), o.rows(szrow, ra)
    # (b) edge crossings: an edge whose end values have strictly opposite signs (after zeroing).
    sz_next, v_next = o.rows(szrow, nxt_row), o.rows(vrow, nxt_row)  # (H V, K), (H V, 2)
    (eb,) = o.nonzero((valid.reshape(-1, 1) & (szrow * sz_next < 0)).reshape(-1))  # flat (vertex row, line)
    rb = eb // K
    s0, s1 = szrow.reshape(-1)[eb], sz_next.reshape(-1)[eb]
    f = s0 / (s0 - s1)
    p0 = o.rows(vrow, rb)
    hb, pb = rb // V, p0 + f[:, None] * (o.rows(v_next, rb) - p0)
    # (c) pairwise intersections of a polygon's lines strictly inside it (line i < line j, both live).
    pi, pj = o.pairs(K, vh)
    hc, pc = o.nonzero(pj[None, :] < ncross[:, None])
    li, lj = hc * K + pi[pc], hc * K + pj[pc]
    zf, gxf, gyf = zl.reshape(-1), gxl.reshape(-1), gyl.reshape(-1)
    gxi, gyi, zi = gxf[li], gyf[li], zf[li]
    gxj, gyj, zj = gxf[lj], gyf[lj], zf[lj]
    det = gxi * gyj - gyi * gxj  # sine of the angle between unit normals
    par = abs(det) <= _PARALLEL_SINE
    same = abs(zi - o.where(gxi * gxj + gyi * gyj > 0, zj, -zj)) <= lo  # the same line (duplicate neurons)
    flag[hc[par & ~same]] = True  # nearly parallel distinct lines: intersection ill-conditioned
    det = o.where(par, 1.0, det)
    qx, qy = (zj * gyi - zi * gyj) / det, (zi * gxj - zj * gxi) / det
    # (H, V) edges, counter-clockwise.
    ex, ey = (v_next[:, 0] - vrow[:, 0]).reshape(H, V), (v_next[:, 1] - vrow[:, 1]).reshape(H, V)
    elen = (ex * ex + ey * ey) ** 0.5
    real_edge = valid & (elen > 0)
    flag[o.nonzero(real_edge & (elen <= hi))[0]] = True  # edges about as short as the tolerance
    # Inward distance of each intersection from each edge line of its polygon (+inf for padding edges).
    ux = o.where(real_edge, ex / o.where(real_edge, elen, 1.0), 0.0)
    uy = o.where(real_edge, ey / o.where(real_edge, elen, 1.0), 0.0)
    c0 = o.where(real_edge, uy * vh[..., 0] - ux * vh[..., 1], float("inf"))
    margin = o.amin(o.rows(c0, hc) + o.rows(ux, hc) * qy[:, None] - o.rows(uy, hc) * qx[:, None], 1)
    flag[hc[~par & (abs(margin) > lo) & (abs(margin) <= hi)]] = True
    inside = ~par & (margin > hi)
    hc, pc = hc[inside], o.stack([qx[inside], qy[inside]], 1)
    # Signs of the derived vertices on every line of their polygon.
    hd, pd = o.cat([hb, hc]), o.cat([pb, pc])
    d = o.rows(zl, hd) + pd[:, 0:1] * o.rows(gxl, hd) + pd[:, 1:2] * o.rows(gyl, hd)
    ad = abs(d)
    flag[hd[o.nonzero((ad > lo) & (ad <= hi))[0]]] = True
    sd = o.where(ad <= tol, 0.0, d)

    h, pts, sig = o.cat([ha, hd]), o.cat([pa, pd]), o.cat([sa, sd])
    # Sign vectors as exact integers, _WORD bits per word, by products with the bit values (float64 is exact up to
    # 2^53): bit k of zero_words set iff on line k, of base iff positive on line k; the extra column counts zeros.
    nw = -(-K // _WORD)
    k = o.arange(K, vh)
    c = o.arange(nw + 1, vh)[None, :]
    packer = o.where((k // _WORD)[:, None] == c, o.to(2 ** (k % _WORD), o.float64)[:, None], o.to(c == nw, o.float64))
    zw = o.to(o.matmul(o.to(sig == 0, o.float64), packer), o.int64)  # (N, nw + 1)
    base = o.to(o.matmul(o.to(sig > 0, o.float64), packer[:, :nw]), o.int64)  # (N, nw)
    nz = zw[:, nw]
    flag[h[nz > _MAX_ZEROS]] = True
    (rows,) = o.nonzero(~flag[h])
    h, pts, nz, zero_words, base = h[rows], o.rows(pts, rows), nz[rows], o.rows(zw[:, :nw], rows), o.rows(base, rows)
    # Each candidate vertex belongs to every cell whose sign vector agrees with its nonzero signs: expand its zeros,
    # copy e of a candidate taking side (e >> t) & 1 of its t-th lowest zero line.
    N = h.shape[0]
    max_zeros = int(nz.max()) if N > 0 else 0
    reps = 2**nz
    src = o.repeat(o.arange(N, vh), reps)
    e = o.arange(src.shape[0], vh) - (o.cumsum(reps) - reps)[src]
    keys = o.rows(base, src)  # (T, nw)
    rest = zero_words  # zero lines not yet expanded
    for t in range(max_zeros):
        low = rest & -rest  # lowest set bit of each word
        if nw > 1:  # only the first word with a zero left holds the row's lowest zero line
            has = o.to(rest != 0, o.int64)
            low = o.where(o.cumsum(has, 1) - has == 0, low, 0)
        rest = rest ^ low
        keys = keys + ((e >> t) & 1)[:, None] * o.rows(low, src)
    hr = h[src]
    if nw == 1 and H * 2**K < 2**62:
        order = o.argsort(hr * 2**K + keys[:, 0])
    else:
        order = _lexsort(o, [keys[:, i] for i in range(nw)] + [hr])
    keys, hr, src = o.rows(keys, order), hr[order], src[order]
    changed = functools.reduce(operator.or_, [keys[1:, i] != keys[:-1, i] for i in range(nw)], hr[1:] != hr[:-1])
    new = o.cat([hr[:1] >= 0, changed])
    gid = o.cumsum(o.to(new, o.int64)) - 1
    (starts,) = o.nonzero(new)
    # A sign vector whose vertices all lie on one of its lines is no cell (its "cell" is a point or a segment).
    ghost = o.segment_common(zero_words, src, starts, gid)
    (rows,) = o.nonzero(~ghost[gid])
    new, src, hr = new[rows], src[rows], hr[rows]
    gid = o.cumsum(o.to(new, o.int64)) - 1
    (starts,) = o.nonzero(new)
    G = starts.shape[0]
    p = o.rows(pts, src)
    mean = o.segment_sum(p, starts, gid) / o.to(o.bincount(gid, G), o.float64)[:, None]
    rel = p - o.rows(mean, gid)
    # Counter-clockwise around the vertex mean, by a pseudo-angle (monotone in the angle, cheaper than atan2):
    # y / (|x| + |y|) for x >= 0, 2 minus it for x < 0, in [-1, 3); groups are 8 apart in the key.
    r1 = abs(rel[:, 0]) + abs(rel[:, 1])
    sine = rel[:, 1] / o.where(r1 > 0, r1, 1.0)
    angle = o.where(rel[:, 0] >= 0, sine, 2.0 - sine)
    p = o.rows(p, o.argsort(o.to(gid, o.float64) * 8.0 + angle))
    # Drop repeated vertices (one point found several ways, e.g. where lines meet on an edge).
    last = o.cat([gid[1:] != gid[:-1], gid[:1] >= 0])
    nxt = o.where(last, starts[gid], o.arange(p.shape[0], vh) + 1)
    gap = p - o.rows(p, nxt)
    (rows,) = o.nonzero(gap[:, 0] * gap[:, 0] + gap[:, 1] * gap[:, 1] > tol * tol)
    p, gid = o.rows(p, rows), gid[rows]
    n = o.bincount(gid, G)
    first = o.cumsum(n) - n
    vmax = int(n.max()) if G > 0 else 1
    slot = o.arange(vmax, vh)[None, :]
    idx = first[:, None] + o.where(slot < n[:, None], slot, (n - 1)[:, None])  # (G, vmax)
    cells = o.rows(p, idx.reshape(-1)).reshape(G, vmax, 2)
    (fallback,) = o.nonzero(flag)
    return cells, n, hr[starts], fallback


def _pad_slots(o, verts, vmax: int):
    """Pad (R, V, 2) to (R, vmax, 2) by repeating the last slot."""
    V = verts.shape[1]
    if V == vmax:
        return verts
    j = o.arange(vmax, verts)
    return verts[:, o.where(j < V, j, V - 1)]


def _split_layer(o, verts, nv, z0, grad, tol: float):
    """All polygons after cutting by one layer's zero lines: (verts, counts, parent polygon of each piece)."""
    parts, fallback = _arrange_layer(o, verts, nv, z0, grad, tol)
    if fallback.shape[0] > 0:
        fv, fn, fp = _cut_layer(*(o.to_tensor(x[fallback]) for x in (verts, nv, z0, grad)), tol)
        parts.append((o.from_tensor(fv), o.from_tensor(fn), fallback[o.from_tensor(fp)]))
    parts = [p for p in parts if p[0].shape[0] > 0]
    vmax = max(p[0].shape[1] for p in parts)
    return (
        o.cat([_pad_slots(o, v, vmax) for v, _, _ in parts]),
        o.cat([n for _, n, _ in parts]),
        o.cat([i for _, _, i in parts]),
    )


def _partition_arrays(layers, origin, basis, dom, tol, head):
    o = _ops_for(dom.device)
    verts = o.from_tensor(dom[None])
    nv = o.from_tensor(torch.full((1,), dom.shape[0], dtype=torch.int64, device=dom.device))
    # Per polygon, the current layer's input is affine in u: h(u) = a + u @ C.
    a, C = o.from_tensor(origin[None]), o.from_tensor(basis[None])
    on_bits = []
    for W, b in layers:
        Wt, b = o.from_tensor(W.T), o.from_tensor(b)
        z0 = o.matmul(a, Wt) + b  # (R, w)
        grad = o.matmul(C.reshape(-1, C.shape[2]), Wt).reshape(C.shape[0], 2, -1)  # (R, 2, w); one 2-D product is faster
        verts, nv, parent = _split_layer(o, verts, nv, z0, grad, tol)
        z0, grad = o.rows(z0, parent), o.rows(grad, parent)
        on_bits = [o.rows(bits, parent) for bits in on_bits]
        # Vertex centroid; padding slots repeat the last vertex, so subtract their excess from the plain sum.
        vsum = o.sum_slots(verts) - (verts.shape[1] - nv)[:, None] * verts[:, -1]
        centroid = vsum / nv[:, None]
        on = (z0 + centroid[:, 0:1] * grad[:, 0] + centroid[:, 1:2] * grad[:, 1]) > 0
        on_bits.append(on)
        a, C = z0 * on, grad * on[:, None, :]
    words = pack_layers(on_bits)
    areas, domain_area = signed_areas(verts), float(signed_areas(o.from_tensor(dom)[None])[0])
    slope = offset = None
    if head is not None:
        # The action mean is affine on each polygon: head(a + u @ C) = offset + u @ slope^T; 2-D products only
        # (a batched (R, 2, w) product costs ~10x more on the CPU).
        W_out, b_out = o.from_tensor(head[0].T), o.from_tensor(head[1])
        R, w = C.shape[0], C.shape[2]
        slope = o.to_tensor(o.matmul(C.reshape(R * 2, w), W_out).reshape(R, 2, -1).swapaxes(1, 2))  # (R, act_dim, 2)
        offset = o.to_tensor(o.matmul(a, W_out) + b_out)
    return o.to_tensor(verts), o.to_tensor(nv), words, o.to_tensor(areas), domain_area, slope, offset


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
    (plane units), and with a ``head`` the affine action map on each polygon. All work is float64 on ``device``;
    one layer at a time, every polygon crossed by the layer's zero lines is split into its arrangement cells at
    once (see the module docstring). Raises UserError for bad shapes, a dependent basis or a non-convex domain.
    """
    layers = as_hidden_layers(hidden_layers, device)
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
    origin = as_float64(origin, device, "plane origin")
    basis = as_float64(basis, device, "plane basis")
    if origin.shape != (d,) or basis.shape != (2, d):
        raise UserError(
            f"plane origin must have shape ({d},) and basis (2, {d}) to match the network input, got "
            f"{tuple(origin.shape)} and {tuple(basis.shape)}"
        )
    b = _ops_for(basis.device).from_tensor(basis)  # numpy on the CPU: a handful of tiny ops, cheaper there
    if not linearly_independent(b[0], b[1], d * RANK_EPS):
        raise UserError("the plane's two basis vectors must be linearly independent")
    dom, scale = _validate_domain(domain, device)
    tol = rtol * scale

    head = as_head(head, layers[-1][0].shape[0], device) if head is not None else None
    verts, nv, words, areas, domain_area, slope, offset = _partition_arrays(layers, origin, basis, dom, tol, head)
    return PlanePartition(
        vertices=verts,
        num_vertices=nv,
        patterns=words,
        areas=areas,
        action_slope=slope,
        action_offset=offset,
        layer_widths=tuple(W.shape[0] for W, _ in layers),
        domain_area=domain_area,
        num_regions=int(verts.shape[0]),
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
