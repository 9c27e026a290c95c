"""Exact linear regions of a ReLU policy network on a 2-D plane of input space, and the paper's plane construction.

A plane is x(u) = origin + u @ basis, u in R^2 (plane coordinates), basis (2, d). The domain is a convex polygon
in plane coordinates. The partition is built one layer at a time over all polygons at once (DESIGN.md,
"Algorithms"): within a polygon the earlier layers' patterns are fixed, so every neuron of the current layer is
affine on the plane and its zero set is a line. Each *round* cuts every polygon that some neuron's zero line
crosses by the lowest-index such neuron (half-plane clipping of padded convex polygons, batched); a layer ends
when no line crosses any polygon. Rounds grow like the depth of the resulting cutting tree (a few tens for
width 64), not like the number of neurons or polygons. After a layer, its pattern is folded into each polygon's
affine map.

Conventions: float64 on ``device``; tolerance ``tol = rtol * largest absolute domain coordinate`` in plane
distance: a line must have a vertex farther than tol on each side to cut a polygon (so no sliver thinner than
tol is made, and a line through a vertex or along an edge does not cut); a polygon's pattern is the sign
(pre-activation > 0) of every hidden neuron at its vertex centroid; patterns are bit-packed as in
``utils.regions`` (int64 words, layer by layer). Polygons are counter-clockwise; padded vertex slots repeat the
last vertex.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from utils.errors import UserError
from utils.regions import (
    DEFAULT_RTOL,
    ArrayLike,
    HiddenLayers,
    activation_patterns,
    as_float64,
    as_head,
    as_hidden_layers,
    pack_bits,
    unpack_patterns,
)


@dataclass
class Plane:
    """A 2-D plane in input space, x(u) = origin + u @ basis, with a convex domain in plane coordinates."""

    origin: Tensor  # (d,)
    basis: Tensor  # (2, d); orthonormal when built by plane_through_states
    domain: Tensor  # (V, 2) convex polygon, counter-clockwise, plane coordinates
    state_coords: Tensor | None = None  # (3, 2) plane coordinates of the defining states, if any

    def to_input(self, uv: Tensor) -> Tensor:
        """Input-space points (N, d) of plane coordinates (N, 2)."""
        return self.origin + uv.to(self.basis) @ self.basis


@dataclass
class PlanePartition:
    """Exact partition of a convex plane domain into convex polygons with one activation pattern each."""

    vertices: Tensor  # (R, Vmax, 2) plane coordinates, counter-clockwise; slots >= num_vertices repeat the last vertex
    num_vertices: Tensor  # (R,) int64
    patterns: Tensor  # (R, W) int64 bit-packed activation patterns (layout as in utils.regions)
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
def _signed_areas(verts: Tensor) -> Tensor:
    """Shoelace areas (R,) of padded polygons (R, V, 2); repeated padding vertices add nothing."""
    x, y = verts[..., 0], verts[..., 1]
    return 0.5 * (x * y.roll(-1, dims=1) - x.roll(-1, dims=1) * y).sum(1)


def _validate_domain(domain: ArrayLike, device: torch.device | str) -> Tensor:
    dom = as_float64(domain, device, "domain")
    if dom.ndim != 2 or dom.shape[1] != 2 or dom.shape[0] < 3:
        raise UserError(f"domain must be a convex polygon of shape (V >= 3, 2) in plane coordinates, got {tuple(dom.shape)}")
    area = float(_signed_areas(dom[None])[0])
    if area < 0:
        dom = dom.flip(0)  # make it counter-clockwise
    edges = dom.roll(-1, 0) - dom
    turn = edges[:, 0] * edges.roll(-1, 0)[:, 1] - edges[:, 1] * edges.roll(-1, 0)[:, 0]
    scale = float(dom.abs().max())
    if abs(area) <= 1e-12 * scale * scale or bool((turn < -1e-12 * scale * scale).any()):
        raise UserError("domain must be a convex polygon with nonzero area, vertices in order around it")
    return dom


def _compact(points: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Keep the flagged slots of each row in order: (R, S, 2), (R, S) -> (R, Vmax, 2) padded, counts (R,)."""
    counts = keep.sum(1)
    vmax = int(counts.max())
    # Stable sort puts kept slots first, in their original order.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    slot = torch.minimum(torch.arange(vmax, device=points.device)[None, :], (counts - 1)[:, None])
    sel = torch.gather(order, 1, slot)
    return torch.gather(points, 1, sel[..., None].expand(-1, -1, 2)), counts


def _clip(verts: Tensor, nv: Tensor, s: Tensor, tol: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split padded convex polygons by lines with signed vertex distances s (R, V): (pos verts, n, neg verts, n)."""
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


def _pad_to(verts: Tensor, vmax: int) -> Tensor:
    if verts.shape[1] == vmax:
        return verts
    return torch.cat([verts, verts[:, -1:].expand(-1, vmax - verts.shape[1], -1)], dim=1)


def _cut_layer(
    verts: Tensor, nv: Tensor, z0: Tensor, grad: Tensor, tol: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Cut every polygon by the zero lines of one layer's neurons: returns verts, counts and each piece's parent."""
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
        pos, n_pos, neg, n_neg = _clip(verts[has_cut], nv[has_cut], s, tol)
        vmax = max(pos.shape[1], neg.shape[1])
        verts = torch.cat([_pad_to(pos, vmax), _pad_to(neg, vmax)])
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
        torch.cat([_pad_to(v, vmax) for v, _, _ in done]),
        torch.cat([n for _, n, _ in done]),
        torch.cat([p for _, _, p in done]),
    )


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
    """Exact partition of a convex domain (plane coordinates) of the plane into linear regions of the network."""
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
    if domain is None:
        raise UserError("pass a domain polygon (V, 2) in plane coordinates, or a Plane that carries one")
    origin = as_float64(origin, device, "plane origin")
    basis = as_float64(basis, device, "plane basis")
    if origin.shape != (d,) or basis.shape != (2, d):
        raise UserError(
            f"plane origin must have shape ({d},) and basis (2, {d}) to match the network input, got "
            f"{tuple(origin.shape)} and {tuple(basis.shape)}"
        )
    if float(torch.linalg.matrix_rank(basis)) < 2:
        raise UserError("the plane's two basis vectors must be linearly independent")
    dom = _validate_domain(domain, device)
    tol = rtol * float(dom.abs().max())

    verts, nv = dom[None], torch.tensor([dom.shape[0]], device=dom.device)
    # Per polygon, the current layer's input is affine in u: h(u) = a + u @ C.
    a, C = origin[None], basis[None]
    words = torch.zeros(1, 0, dtype=torch.int64, device=dom.device)
    for W, b in layers:
        z0 = torch.addmm(b, a, W.T)  # (R, w)
        grad = C @ W.T  # (R, 2, w)
        verts, nv, parent = _cut_layer(verts, nv, z0, grad, tol)
        z0, grad, words = z0[parent], grad[parent], words[parent]
        valid = (torch.arange(verts.shape[1], device=dom.device)[None, :] < nv[:, None]).to(verts)
        centroid = (verts * valid[..., None]).sum(1) / nv[:, None].to(verts)
        on = (z0 + torch.bmm(centroid[:, None, :], grad).squeeze(1)) > 0
        words = torch.cat([words, pack_bits(on)], dim=1)
        a, C = z0 * on, grad * on[:, None, :]

    if head is not None:
        W_out, b_out = as_head(head, layers[-1][0].shape[0], device)
        slope = (C @ W_out.T).transpose(1, 2)  # (R, act_dim, 2)
        offset = torch.addmm(b_out, a, W_out.T)
    else:
        slope = offset = None
    return PlanePartition(
        vertices=verts,
        num_vertices=nv,
        patterns=words,
        areas=_signed_areas(verts),
        action_slope=slope,
        action_offset=offset,
        layer_widths=tuple(W.shape[0] for W, _ in layers),
        domain_area=float(_signed_areas(dom[None])[0]),
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
    s1: ArrayLike, s2: ArrayLike, s3: ArrayLike, scale: float = 1.25, *, device: torch.device | str = "cpu"
) -> Plane:
    """The plane through three input-space states, centred at their circumcentre, with an orthonormal basis; domain =
    a square whose side is ``scale`` times the circumcircle's diameter."""
    p1, p2, p3 = (as_float64(s, device, name) for s, name in ((s1, "s1"), (s2, "s2"), (s3, "s3")))
    if p1.ndim != 1 or p1.shape != p2.shape or p1.shape != p3.shape:
        raise UserError("s1, s2, s3 must be three states of the same shape (d,)")
    if not scale > 0:
        raise UserError(f"scale must be positive, got {scale}")
    u, v = p2 - p1, p3 - p1
    size = float(torch.maximum(u.norm(), v.norm()))
    e1 = u / u.norm() if float(u.norm()) > 0 else u
    w = v - (v @ e1) * e1
    if size == 0 or float(w.norm()) <= 1e-9 * size:
        raise UserError("the three states are (nearly) collinear or equal; pick three states that span a plane")
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
