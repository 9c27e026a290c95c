"""Deliberately simple exact region analysis: one segment, one region, one neuron at a time (numpy + Python loops).

Independent of utils/geometry/regions.py and utils/geometry/planes.py in algorithm (not in conventions): along a segment it *walks*
from region to region (at each point, compute the region's affine pre-activations by a forward pass, then the
nearest zero ahead over every neuron); on a plane it clips the polygon list by one neuron's zero line at a time.
Shared conventions (so results are comparable): tol_x = rtol * largest absolute input coordinate; zeros within
tol of a piece end or of each other do not make extra pieces; a piece's pattern = signs (z > 0) at its midpoint
(one unit inside the finite end of a half-unbounded piece, t = 0 for an unbroken line).

Used by the tests as ground truth and by benchmarks/bench_regions.py as the baseline.
"""
from __future__ import annotations

import math

import numpy as np

RTOL = 1e-9


def _layers_np(hidden_layers):
    return [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)) for W, b in hidden_layers]


def pattern_at(layers, x) -> np.ndarray:
    """Activation pattern (bool, all hidden neurons in layer order) at one input point."""
    h = np.asarray(x, dtype=np.float64)
    bits = []
    for W, b in layers:
        z = W @ h + b
        on = z > 0
        bits.append(on)
        h = np.where(on, z, 0.0)
    return np.concatenate(bits)


def _one_sided(layers, x, v, tol_here):
    """Pre-activations at x and their slopes along v just after x (t+), for every layer."""
    h, dh = x, v
    zs, dzs, states = [], [], []
    for W, b in layers:
        z = W @ h + b
        dz = W @ dh
        on = np.zeros(len(z), dtype=bool)
        for k in range(len(z)):
            if dz[k] != 0.0 and abs(z[k] / dz[k]) <= tol_here:
                on[k] = dz[k] > 0.0  # sitting on the zero: the side we move into decides
            else:
                on[k] = z[k] > 0.0
        zs.append(z)
        dzs.append(dz)
        states.append(on)
        h = np.where(on, z, 0.0)
        dh = np.where(on, dz, 0.0)
    return zs, dzs, states


def _walk(layers, x0, v, t_end, tol_t, rel_tol=0.0, t_offset=0.0):
    """Pieces (t_start, t_end, (layer, neuron) that opened it) of x0 + t v for t in [0, t_end] (t_end may be inf).

    The tolerance at parameter t is tol_t + rel_tol * |t + t_offset| (t_offset: where t = 0 sits on a line).
    """
    pieces = []
    t = 0.0
    opened = (-1, -1)
    while True:
        tol_here = tol_t + rel_tol * abs(t + t_offset)
        zs, dzs, states = _one_sided(layers, x0 + t * v, v, tol_here)
        exit_t, who = t_end, None
        for layer, (z, dz, on) in enumerate(zip(zs, dzs, states)):
            for k in range(len(z)):
                if dz[k] == 0.0 or (dz[k] > 0.0) == on[k]:
                    continue  # moving away from its zero: this neuron cannot end the region
                r = t - z[k] / dz[k]
                if t + tol_here < r < t_end - tol_t and r < exit_t:
                    exit_t, who = r, (layer, k)
        pieces.append((t, exit_t, opened))
        if who is None:
            return pieces
        t, opened = exit_t, who


def _eval_t(t0, t1):
    if math.isinf(t0) and math.isinf(t1):
        return 0.0
    if math.isinf(t0):
        return t1 - 1.0
    if math.isinf(t1):
        return t0 + 1.0
    return 0.5 * (t0 + t1)


def segment_pieces_ref(hidden_layers, starts, ends, rtol: float = RTOL) -> dict:
    """Pieces of independent segments: dict of lists (segment, t_start, t_end, layer, neuron, pattern) + totals."""
    layers = _layers_np(hidden_layers)
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    tol_x = rtol * max(np.abs(starts).max(), np.abs(ends).max())
    out = {"segment": [], "t_start": [], "t_end": [], "layer": [], "neuron": [], "pattern": []}
    for i in range(len(starts)):
        v = ends[i] - starts[i]
        length = float(np.linalg.norm(v))
        tol_t = tol_x / length if length > 0 else math.inf
        for t0, t1, (layer, neuron) in _walk(layers, starts[i], v, 1.0, tol_t):
            out["segment"].append(i)
            out["t_start"].append(t0)
            out["t_end"].append(t1)
            out["layer"].append(layer)
            out["neuron"].append(neuron)
            out["pattern"].append(pattern_at(layers, starts[i] + 0.5 * (t0 + t1) * v))
    return _totals(out, len(starts), len(layers))


def path_pieces_ref(hidden_layers, points, rtol: float = RTOL) -> dict:
    """Pieces of the polyline through points (T, d)."""
    points = np.asarray(points, dtype=np.float64)
    return segment_pieces_ref(hidden_layers, points[:-1], points[1:], rtol)


def line_pieces_ref(hidden_layers, points, directions, rtol: float = RTOL) -> dict:
    """Pieces of whole lines points_i + t directions_i: find the leftmost breakpoint, then walk right to +inf."""
    layers = _layers_np(hidden_layers)
    points = np.asarray(points, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64)
    tol_x = rtol * max(np.abs(points).max(), np.abs(directions).max())
    out = {"segment": [], "t_start": [], "t_end": [], "layer": [], "neuron": [], "pattern": []}
    for i in range(len(points)):
        p, u = points[i], directions[i]
        tol_t = tol_x / float(np.linalg.norm(u))
        left = _walk(layers, p, -u, math.inf, tol_t, rtol)
        leftmost = -left[-1][0]  # start of the last piece walking left = leftmost breakpoint (0 if none)
        start = leftmost - 1.0  # inside the leftmost, unbounded piece
        pieces = [(start + t0, start + t1, who) for t0, t1, who in _walk(layers, p + start * u, u, math.inf, tol_t, rtol, start)]
        pieces[0] = (-math.inf, pieces[0][1], pieces[0][2])
        for t0, t1, (layer, neuron) in pieces:
            out["segment"].append(i)
            out["t_start"].append(t0)
            out["t_end"].append(t1)
            out["layer"].append(layer)
            out["neuron"].append(neuron)
            out["pattern"].append(pattern_at(layers, p + _eval_t(t0, t1) * u))
    res = _totals(out, len(points), len(layers))
    per_line = [set() for _ in range(len(points))]
    for seg, pat in zip(out["segment"], out["pattern"]):
        per_line[seg].add(pat.tobytes())
    res["num_regions_per_line"] = [len(s) for s in per_line]
    return res


def _totals(out: dict, num_segments: int, num_layers: int) -> dict:
    n_pieces = len(out["segment"])
    out["num_transitions"] = n_pieces - num_segments
    out["num_regions"] = len({p.tobytes() for p in out["pattern"]})
    per_layer = [0] * num_layers
    for layer in out["layer"]:
        if layer >= 0:
            per_layer[layer] += 1
    out["transitions_per_layer"] = per_layer
    return out


# --------------------------------------------------------------------------------------------------------------
# 2-D: sequential clipping, one neuron and one polygon at a time
# --------------------------------------------------------------------------------------------------------------
def split_polygon(poly, s):
    """Split a convex polygon (list of (x, y)) by signed values s at its vertices into (positive, negative) parts.

    Plain arithmetic only, so it is exact on Fractions (the near-tolerance oracle uses it so)."""
    pos, neg = [], []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        sp, sq = s[i], s[(i + 1) % n]
        if sp >= 0:
            pos.append(p)
        if sp <= 0:
            neg.append(p)
        if sp * sq < 0:
            f = sp / (sp - sq)
            x = (p[0] + f * (q[0] - p[0]), p[1] + f * (q[1] - p[1]))
            pos.append(x)
            neg.append(x)
    return pos, neg


def polygon_area(poly) -> float:
    """Signed shoelace area of a polygon given as a list of (x, y)."""
    s = 0.0
    for i in range(len(poly)):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % len(poly)]
        s += x0 * y1 - x1 * y0
    return 0.5 * s


def plane_partition_ref(hidden_layers, origin, basis, domain, rtol: float = RTOL) -> dict:
    """Partition of a convex domain (plane coords) into polygons with one pattern each: dict with polygons, patterns."""
    layers = _layers_np(hidden_layers)
    origin = np.asarray(origin, dtype=np.float64)
    basis = np.asarray(basis, dtype=np.float64)
    domain = [tuple(map(float, v)) for v in np.asarray(domain, dtype=np.float64)]
    if polygon_area(domain) < 0:
        domain = domain[::-1]
    tol = rtol * float(np.abs(np.asarray(domain)).max())
    # Each polygon: (vertices, a, C, bits): the current layer's input is a + C^T u on it.
    polys = [(domain, origin.copy(), basis.copy(), [])]
    for W, b in layers:
        with_z = []
        for verts, a, C, bits in polys:
            z0 = W @ a + b
            g = C @ W.T  # (2, w)
            with_z.append((verts, a, C, bits, z0, g))
        for k in range(W.shape[0]):
            nxt = []
            for verts, a, C, bits, z0, g in with_z:
                gx, gy, c0 = g[0, k], g[1, k], z0[k]
                gn = math.hypot(gx, gy)
                if gn == 0.0:
                    nxt.append((verts, a, C, bits, z0, g))
                    continue
                s = [(c0 + gx * x + gy * y) / gn for x, y in verts]
                s = [0.0 if abs(v) <= tol else v for v in s]
                if max(s) > 0 and min(s) < 0:
                    pos, neg = split_polygon(verts, s)
                    nxt.append((pos, a, C, bits, z0, g))
                    nxt.append((neg, a, C, bits, z0, g))
                else:
                    nxt.append((verts, a, C, bits, z0, g))
            with_z = nxt
        polys = []
        for verts, a, C, bits, z0, g in with_z:
            cx = sum(v[0] for v in verts) / len(verts)
            cy = sum(v[1] for v in verts) / len(verts)
            z = z0 + g[0] * cx + g[1] * cy
            on = z > 0
            polys.append((verts, np.where(on, z0, 0.0), np.where(on[None, :], g, 0.0), bits + [on]))
    patterns = [np.concatenate(bits) for _, _, _, bits in polys]
    return {
        "polygons": [verts for verts, _, _, _ in polys],
        "patterns": patterns,
        "areas": [polygon_area(verts) for verts, _, _, _ in polys],
        "num_regions": len(polys),
    }
