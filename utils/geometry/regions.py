"""Exact linear regions of a ReLU policy network along paths, segments and full lines (1-D).

A network is given by its hidden layers ``[(W, b), ...]`` (W of shape (out, in), applied as relu(W x + b)).
Along a segment x(t) = start + t (end - start), t in [0, 1], the activation pattern of all hidden neurons is
piecewise constant; a *piece* is a maximal sub-interval with one pattern. The algorithm (docs/design.md, "Algorithms")
processes one layer at a time: within a piece the earlier layers' patterns are fixed, so every neuron of the current
layer is affine in t, and its zero (if strictly inside the piece) splits it. On the CPU it runs as a compiled kernel,
one segment at a time (utils/geometry/regions_kernel.py); on other devices as batched torch code over all pieces of a
chunk of segments at once (``_split_chunk``; ``chunk_size`` bounds its memory and is unused by the kernel).

Conventions shared by every function here:
- float64 throughout, on ``device`` (cpu or cuda).
- Tolerance: ``tol_x = rtol * scale`` in input-space distance, scale = the largest absolute coordinate of the
  inputs. A zero closer than tol_x to a piece's end does not split it (a tiny piece is merged, never counted),
  and zeros closer than tol_x to each other are one transition in which several bits flip.
- A piece's pattern is the sign (pre-activation > 0) of every hidden neuron at the piece's midpoint; for a
  half-unbounded piece of a line, one unit of t inside its finite end; for a line with no breakpoint, at t = 0.
- Patterns are bit-packed into int64 words, layer by layer: layer l occupies ``ceil(width_l / 64)`` words
  starting at word ``word_offsets(widths)[l]``; neuron j of that layer is bit ``j % 64`` of word ``j // 64``.
  ``unpack_patterns`` turns them back into booleans.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from utils.errors import UserError

DEFAULT_RTOL = 1e-9
WORD_BITS = 64
# Elements of one (pieces x width) float64 work tensor per chunk; bounds peak memory to a few hundred MB.
_CHUNK_ELEMENTS = 1 << 22

ArrayLike = Any  # numpy array, torch tensor or nested sequence of floats
HiddenLayers = Sequence[tuple[ArrayLike, ArrayLike]]


# --------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------
def as_float64(x: ArrayLike, device: torch.device | str, name: str) -> Tensor:
    """Convert an array-like to a float64 tensor on ``device``; reject non-finite values."""
    on_host = (device == "cpu" or torch.device(device).type == "cpu") and not (
        isinstance(x, Tensor) and x.device.type != "cpu")
    try:
        if on_host:
            # through numpy: a few microseconds where torch's conversions cost several times that, and a plane
            # call converts about ten small arrays (the same float64 array comes back, no copy, as before)
            a = np.asarray(x.detach().numpy() if isinstance(x, Tensor) else x, dtype=np.float64)
            finite, t = np.isfinite(a).all(), torch.from_numpy(a)
        else:
            t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
            t = t.detach().to(device=device, dtype=torch.float64)
            finite = torch.isfinite(t).all()
    except (TypeError, ValueError) as err:  # strings, ragged lists, objects
        raise UserError(f"{name} must be an array of numbers ({err})") from None
    if not bool(finite):
        raise UserError(f"{name} contains NaN or infinite values; pass finite numbers only")
    return t


def as_hidden_layers(hidden_layers: HiddenLayers, device: torch.device | str = "cpu") -> list[tuple[Tensor, Tensor]]:
    """Validate hidden layers [(W, b), ...] and return them as float64 tensors on ``device``."""
    if not isinstance(hidden_layers, (list, tuple)) or len(hidden_layers) == 0:
        raise UserError("hidden_layers must be a non-empty list of (W, b) pairs, one per hidden layer")
    layers: list[tuple[Tensor, Tensor]] = []
    for i, pair in enumerate(hidden_layers):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise UserError(f"hidden layer {i} must be a (W, b) pair")
        W = as_float64(pair[0], device, f"hidden layer {i} weight")
        b = as_float64(pair[1], device, f"hidden layer {i} bias")
        if W.ndim != 2 or b.ndim != 1 or b.shape[0] != W.shape[0]:
            raise UserError(
                f"hidden layer {i}: W must have shape (out, in) and b shape (out,), got {tuple(W.shape)} "
                f"and {tuple(b.shape)}"
            )
        if layers and W.shape[1] != layers[-1][0].shape[0]:
            raise UserError(
                f"hidden layer {i} takes {W.shape[1]} inputs but layer {i - 1} has {layers[-1][0].shape[0]} "
                "neurons; pass the layers in order"
            )
        layers.append((W, b))
    return layers


def as_head(head: tuple[ArrayLike, ArrayLike], last_width: int, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """Validate the linear output head (W_out (act_dim, last_width), b_out (act_dim,))."""
    if not isinstance(head, (list, tuple)) or len(head) != 2:
        raise UserError("head must be a (W_out, b_out) pair")
    W = as_float64(head[0], device, "head weight")
    b = as_float64(head[1], device, "head bias")
    if W.ndim != 2 or W.shape[1] != last_width or b.ndim != 1 or b.shape[0] != W.shape[0]:
        raise UserError(
            f"head must be W_out of shape (act_dim, {last_width}) and b_out of shape (act_dim,), got "
            f"{tuple(W.shape)} and {tuple(b.shape)}"
        )
    return W, b


def _as_points(x: ArrayLike, in_dim: int, device: torch.device | str, name: str) -> Tensor:
    t = as_float64(x, device, name)
    if t.ndim != 2 or t.shape[1] != in_dim:
        raise UserError(f"{name} must have shape (N, {in_dim}) to match the network's input size, got {tuple(t.shape)}")
    return t


def _as_point_pairs(
    a: ArrayLike, b: ArrayLike, in_dim: int, device: torch.device | str, names: tuple[str, str], what: str
) -> tuple[Tensor, Tensor]:
    """Two matching, non-empty point sets (N, in_dim), e.g. segment starts and ends; ``what`` names one item."""
    p, q = _as_points(a, in_dim, device, names[0]), _as_points(b, in_dim, device, names[1])
    if p.shape != q.shape:
        raise UserError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    if p.shape[0] == 0:
        raise UserError(f"pass at least one {what}")
    return p, q


# --------------------------------------------------------------------------------------------------------------
# Bit-packed patterns
# --------------------------------------------------------------------------------------------------------------
def words_per_layer(widths: Sequence[int]) -> list[int]:
    """Number of int64 words used for each layer's bits."""
    return [-(-w // WORD_BITS) for w in widths]


def word_offsets(widths: Sequence[int]) -> list[int]:
    """Index of the first word of each layer in a packed pattern."""
    offsets, total = [], 0
    for n in words_per_layer(widths):
        offsets.append(total)
        total += n
    return offsets


def _pack_matrix(w: int, device: torch.device | str) -> Tensor:
    # Column 2k (2k + 1) sums bits 0-31 (32-63) of word k; partial sums stay below 2**32, so float64 is exact.
    j = torch.arange(w, device=device)
    m = torch.zeros(w, 2 * (-(-w // WORD_BITS)), dtype=torch.float64, device=device)
    m[j, j // 32] = torch.exp2((j % 32).to(torch.float64))
    return m


def _pack_on_device(bits: Tensor) -> Tensor:
    """One layer's booleans (N, w) as int64 words (N, ceil(w / 64)) by a float64 product: no bit ops over 64
    columns, so it runs as one kernel on any device."""
    halves = (bits.to(torch.float64) @ _pack_matrix(bits.shape[1], bits.device)).to(torch.int64)
    # The high half's bit 31 lands on the sign bit: int64 shifts wrap, which is the two's-complement word we want.
    return halves[:, 0::2] + torch.bitwise_left_shift(halves[:, 1::2], 32)


def _pack_on_host(layer_bits: list[np.ndarray]) -> Tensor:
    """Per-layer booleans as int64 words with numpy's packbits (on the CPU several times cheaper than the product)."""
    spans = [-(-b.shape[1] // WORD_BITS) * WORD_BITS for b in layer_bits]  # each layer starts a new word
    bits = np.zeros((layer_bits[0].shape[0], sum(spans)), dtype=bool)
    start = 0
    for b, span in zip(layer_bits, spans):
        bits[:, start : start + b.shape[1]] = b
        start += span
    # Little-endian bit and byte order: bit j of a layer's bytes is bit j of its int64 word.
    return torch.from_numpy(np.packbits(bits, axis=1, bitorder="little").view("<i8").astype(np.int64, copy=False))


def pack_layers(layer_bits: Sequence[Tensor | np.ndarray]) -> Tensor:
    """Per-layer booleans [(N, w_l)] (torch or numpy) -> packed int64 patterns (N, W) in the layout above, each layer
    starting a new word; on the bits' device."""
    if isinstance(layer_bits[0], np.ndarray) or layer_bits[0].device.type == "cpu":
        return _pack_on_host([b if isinstance(b, np.ndarray) else b.numpy() for b in layer_bits])
    return torch.cat([_pack_on_device(b) for b in layer_bits], dim=1)


def pack_bits(bits: Tensor) -> Tensor:
    """Pack booleans (N, w) of one layer into int64 words (N, ceil(w / 64)); neuron j -> bit j % 64 of word j // 64."""
    return pack_layers([bits])


def sort_rows(x: Tensor) -> Tensor:
    """Permutation that sorts the rows of an integer matrix (N, k) lexicographically (stable)."""
    order = torch.argsort(x[:, -1], stable=True)
    for col in range(x.shape[1] - 2, -1, -1):  # radix-style: least significant column first
        order = order[torch.argsort(x[order, col], stable=True)]
    return order


def first_of_distinct(x: Tensor) -> tuple[Tensor, Tensor]:
    """Lexicographic order of rows (N, k) and a flag per sorted row marking the first of each distinct value."""
    order = sort_rows(x)
    s = x[order]
    first = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    first[1:] = (s[1:] != s[:-1]).any(1)
    return order, first


def _single_key(x: Tensor) -> Tensor | None:
    """The rows of a nonnegative integer matrix (N, k) as one int64 each, order-preserving and exact, when all the
    columns' used bits fit in 63 bits (e.g. the pattern words of a net of total width <= 63); else None."""
    if x.shape[1] == 1:
        return x[:, 0]
    if bool((x < 0).any()):
        return None
    bits = [int(m).bit_length() for m in x.amax(0).tolist()]
    if sum(bits) > 63:
        return None
    key = torch.zeros_like(x[:, 0])
    for col, b in zip(x.unbind(1), bits):
        key = torch.bitwise_left_shift(key, b) | col
    return key


def count_distinct_rows(x: Tensor) -> int:
    """Number of distinct rows of an integer matrix (N, k) (torch.unique(dim=0) is much slower on CPU)."""
    if x.shape[0] == 0:
        return 0
    key = _single_key(x)
    if key is None:
        return int(first_of_distinct(x)[1].sum())
    # Counting needs only sorted values, not a permutation: an unstable value sort is several times cheaper than the
    # stable argsorts of sort_rows (numpy's on the CPU: ~7x cheaper than torch.sort there).
    s = np.sort(key.numpy()) if key.device.type == "cpu" else torch.sort(key).values
    return 1 + int((s[1:] != s[:-1]).sum())


def unpack_patterns(patterns: Tensor, widths: Sequence[int]) -> Tensor:
    """Unpack int64 pattern words (N, W) into booleans (N, sum(widths)), neurons in layer order."""
    parts = []
    for offset, w in zip(word_offsets(widths), widths):
        j = torch.arange(w, device=patterns.device)
        words = patterns[:, offset + j // WORD_BITS]  # (N, w): the word holding each neuron's bit
        parts.append(torch.bitwise_and(torch.bitwise_right_shift(words, j % WORD_BITS), 1).bool())
    return torch.cat(parts, dim=1)


def activation_patterns(hidden_layers: HiddenLayers, points: ArrayLike, *, device: torch.device | str = "cpu") -> Tensor:
    """Packed activation patterns (N, W) int64 of input-space points (N, d): bit on iff pre-activation > 0."""
    layers = as_hidden_layers(hidden_layers, device)
    h = _as_points(points, layers[0][0].shape[1], device, "points")
    layer_bits = []
    for W, b in layers:
        z = torch.addmm(b, h, W.T)
        on = z > 0
        layer_bits.append(on)
        h = z * on
    return pack_layers(layer_bits)


# --------------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------------
@dataclass
class PathPieces:
    """Pieces of segments (or lines): maximal parameter intervals with one activation pattern of all hidden neurons.

    Pieces are ordered by segment, then by t. For segment i, x(t) = start_i + t (end_i - start_i), t in [0, 1];
    for line i, x(t) = point_i + t direction_i, t in (-inf, inf).
    """

    segment_index: Tensor  # (P,) int64: which segment / line the piece belongs to
    t_start: Tensor  # (P,) float64
    t_end: Tensor  # (P,) float64
    length: Tensor  # (P,) float64: length of the piece in input space (inf for unbounded pieces of lines)
    patterns: Tensor  # (P, W) int64: bit-packed activation pattern (see module docstring)
    opened_by_layer: Tensor  # (P,) int64: layer whose sign change opened the piece; -1 for a segment's first piece
    opened_by_neuron: Tensor  # (P,) int64: neuron (index within its layer) that opened it; -1 for a first piece
    layer_widths: tuple[int, ...]
    num_segments: int
    num_transitions: int  # sum over segments of (pieces - 1)
    num_regions: int  # distinct patterns over all pieces of all segments
    transitions_per_layer: list[int]  # transitions opened by each layer (sums to num_transitions)

    def pieces_per_segment(self) -> Tensor:
        """Number of pieces of each segment (num_segments,)."""
        return torch.bincount(self.segment_index, minlength=self.num_segments)

    def unpacked_patterns(self) -> Tensor:
        """Patterns as booleans (P, n), neurons in layer order."""
        return unpack_patterns(self.patterns, self.layer_widths)


@dataclass
class PathCounts:
    """Totals along a path or set of segments (no per-piece data)."""

    num_transitions: int
    num_regions: int
    transitions_per_layer: list[int]


@dataclass
class LineRegions:
    """Regions crossed by whole lines x(t) = point + t direction, t in (-inf, inf)."""

    num_regions: Tensor  # (N,) int64: distinct regions each line passes through
    pieces: PathPieces  # the pieces of all lines (segment_index = line index)


# --------------------------------------------------------------------------------------------------------------
# Core: split pieces layer by layer
# --------------------------------------------------------------------------------------------------------------
def _piece_eval_t(t0: Tensor, t1: Tensor) -> Tensor:
    """Parameter at which a piece's pattern is evaluated: midpoint, or one unit inside a finite end."""
    mid = 0.5 * (t0 + t1)
    lo_inf, hi_inf = torch.isinf(t0), torch.isinf(t1)
    mid = torch.where(lo_inf, t1 - 1.0, mid)
    mid = torch.where(hi_inf, t0 + 1.0, mid)
    return torch.where(lo_inf & hi_inf, torch.zeros_like(mid), mid)


def _shift(t: Tensor, tol: Tensor, rel_tol: float) -> Tensor:
    """t moved inwards by the tolerance at t (absolute tol plus rel_tol * |t|); infinite ends stay infinite."""
    moved = t + tol + torch.sign(tol) * rel_tol * t.abs()
    return torch.where(torch.isinf(t), t, moved)


def _eval_t(t0: Tensor, t1: Tensor, unbounded: bool) -> Tensor:
    return _piece_eval_t(t0, t1) if unbounded else 0.5 * (t0 + t1)


def _prefix_xor(x: Tensor) -> Tensor:
    """Inclusive prefix XOR along dim 0 (log-step scan)."""
    x = x.clone()
    step = 1
    while step < x.shape[0]:
        x[step:] ^= x[:-step].clone()
        step *= 2
    return x


def _split_pieces(
    row: Tensor, neuron: Tensor, zero_t: Tensor, t1: Tensor, tol: Tensor, rel_tol: float
) -> dict[str, Tensor]:
    """Where pieces split, from their zeros farther than tol from both ends (row, neuron, t): one flat entry per zero.

    Returns the parent of every new piece, the positions, parameters and openers (lowest zero, then lowest index) of
    the new pieces that start at a transition, the number of transitions in each old piece, each old piece's first
    new piece and the end of that first piece.
    """
    device = row.device
    # Order entries by piece, then by zero position; stable, so tied zeros stay in neuron order.
    order = torch.argsort(zero_t, stable=True)
    order = order[torch.argsort(row[order], stable=True)]
    row, neuron, zero_t = row[order], neuron[order], zero_t[order]
    new_row = torch.ones_like(row, dtype=torch.bool)
    new_row[1:] = row[1:] != row[:-1]
    # A zero more than tol after the previous one starts a new transition; closer ones flip together.
    starts = new_row.clone()
    prev = zero_t[:-1]
    starts[1:] |= (zero_t[1:] - prev) > tol[row[1:]] + rel_tol * prev.abs()
    s_idx = torch.nonzero(starts).squeeze(1)
    s_row = row[s_idx]
    n_pieces = t1.shape[0]
    transitions = torch.bincount(s_row, minlength=n_pieces)
    new_per_piece = 1 + transitions
    parent = torch.repeat_interleave(torch.arange(n_pieces, device=device), new_per_piece)
    first = torch.cumsum(new_per_piece, 0) - new_per_piece
    # The k-th transition overall, in row r, lands after r + 1 first pieces and k earlier transitions.
    pos = torch.arange(s_idx.shape[0], device=device) + s_row + 1
    first_end = t1.clone()
    first_end[row[new_row]] = zero_t[new_row]
    return {
        "parent": parent,
        "pos": pos,
        "t": zero_t[s_idx],
        "neuron": neuron[s_idx],
        "transitions": transitions,
        "first": first,
        "first_end": first_end,
    }


def _split_chunk(
    layers: list[tuple[Tensor, Tensor]],
    base: Tensor,
    direction: Tensor,
    t0: Tensor,
    t1: Tensor,
    tol_t: Tensor,
    unbounded: bool,
    rel_tol: float,
) -> dict[str, Tensor]:
    """Pieces of the parametrized segments x(t) = base + t direction, t in [t0, t1], of one chunk.

    tol_t is the tolerance in t per segment; rel_tol * |t| is added to it because far along a line the round-off
    of a zero's position grows with |t|.

    Patterns (module docstring): after each layer, every piece's bits of the layers so far are their signs at the
    piece's own evaluation point te, and the affine map handed to the next layer is the one of those bits. A piece is
    *loose* if a neuron of the layers so far changes sign strictly inside it without opening a transition there (a
    zero within tol of an end, or a later zero of a merged transition); its sub-pieces inherit that. In a piece that
    is not loose, every earlier-layer neuron has one sign on the whole piece, so the bits and affine map a sub-piece
    inherits are its own; and the current layer's neurons change sign only at the transitions, each flipping just its
    opener's bit, so a sub-piece's current bits are the first sub-piece's (taken at its te) with the openers' bits up
    to it flipped. The sub-pieces of a loose piece that splits redo the forward pass at their own te instead (a zero
    may lie between the parent's te and theirs). Loose pieces need a zero within a tolerance of another feature, so
    they are rare and the redo is cheap; evaluating every new piece's bits directly costs a (pieces x width) gather
    and evaluation per layer instead, ~20% more time in benchmarks/bench_regions.py (1-D).
    """
    device = base.device
    n_seg = base.shape[0]
    seg = torch.arange(n_seg, device=device)
    # Per piece, the current layer's input is affine in t: h(t) = a + t c.
    a, c = base, direction
    loose = torch.zeros(n_seg, dtype=torch.bool, device=device)
    open_layer = torch.full((n_seg,), -1, dtype=torch.int64, device=device)
    open_neuron = torch.full((n_seg,), -1, dtype=torch.int64, device=device)
    words: list[Tensor] = []
    last = len(layers) - 1
    for layer_index, (W, b) in enumerate(layers):
        z0 = torch.addmm(b, a, W.T)  # (P, w) pre-activation at t = 0
        zs = c @ W.T  # (P, w) its slope in t
        ratio = z0 / zs  # the zero is at t = -ratio; zero slope -> +-inf or nan, which never counts as inside
        # One entry per (piece, neuron) zero strictly inside the piece; `far` marks those farther than tol from both
        # ends, which split it (the ends moved inwards by tol never leave the piece, so they are a subset).
        row, neuron = torch.nonzero((ratio < -t0[:, None]) & (ratio > -t1[:, None]), as_tuple=True)
        zero_t = -ratio[row, neuron]
        tol = tol_t[seg]
        lo, hi = _shift(t0, tol, rel_tol).index_select(0, row), _shift(t1, -tol, rel_tol).index_select(0, row)
        far = (zero_t > lo) & (zero_t < hi)
        crossings = torch.bincount(row, minlength=t0.shape[0])
        keep = torch.nonzero(far).squeeze(1)
        if keep.numel() < row.numel():  # zeros within tol of an end: they leave their piece loose, but do not split it
            row, neuron, zero_t = row[keep], neuron[keep], zero_t[keep]
        if row.numel() == 0:
            loose |= crossings > 0
            on = torch.addcmul(z0, _eval_t(t0, t1, unbounded)[:, None], zs) > 0
            words.append(pack_bits(on))
        else:
            split = _split_pieces(row, neuron, zero_t, t1, tol, rel_tol)
            parent, pos, opener, transitions = split["parent"], split["pos"], split["neuron"], split["transitions"]
            loose |= crossings > transitions  # each transition's first zero is one of the crossings
            # Pattern of each parent's first sub-piece at its midpoint; later sub-pieces flip their openers' bits
            # (exact unless the parent is loose; those sub-pieces are redone below).
            first_on = torch.addcmul(z0, _eval_t(t0, split["first_end"], unbounded)[:, None], zs) > 0
            flips = torch.zeros(parent.shape[0], -(-W.shape[0] // WORD_BITS), dtype=torch.int64, device=device)
            flips[pos, opener // WORD_BITS] = torch.bitwise_left_shift(torch.ones_like(opener), opener % WORD_BITS)
            acc = _prefix_xor(flips)
            first = split["first"]
            words.append(pack_bits(first_on)[parent] ^ acc ^ acc[first[parent]])
            redo_parent = loose & (transitions > 0)  # loose pieces that split: their sub-pieces are redone below
            loose = loose.index_select(0, parent)
            t0, t1 = t0[parent], t1[parent]
            t0[pos] = split["t"]
            t1[pos - 1] = split["t"]
            open_layer, open_neuron = open_layer[parent], open_neuron[parent]
            open_layer[pos] = layer_index
            open_neuron[pos] = opener
            seg = seg[parent]
            words[:-1] = [w.index_select(0, parent) for w in words[:-1]]
            if layer_index < last:
                z0, zs = z0.index_select(0, parent), zs.index_select(0, parent)
            if bool(redo_parent.any()):
                redo = torch.nonzero(redo_parent[parent]).squeeze(1)
                # Forward pass at the sub-pieces' own te: all bits so far, and this layer's affine map from them.
                h0, hs, t_r = base[seg[redo]], direction[seg[redo]], _eval_t(t0[redo], t1[redo], unbounded)[:, None]
                for k, (Wk, bk) in enumerate(layers[: layer_index + 1]):
                    zk0, zks = torch.addmm(bk, h0, Wk.T), hs @ Wk.T
                    on_k = torch.addcmul(zk0, t_r, zks) > 0
                    words[k][redo] = pack_bits(on_k)
                    h0, hs = torch.where(on_k, zk0, 0.0), torch.where(on_k, zks, 0.0)
                if layer_index < last:
                    z0[redo], zs[redo] = zk0, zks
            if layer_index < last:
                on = unpack_patterns(words[-1], [W.shape[0]])
        if layer_index < last:
            a, c = torch.where(on, z0, 0.0), torch.where(on, zs, 0.0)
    return {
        "segment_index": seg,
        "t_start": t0,
        "t_end": t1,
        "patterns": torch.cat(words, dim=1),
        "opened_by_layer": open_layer,
        "opened_by_neuron": open_neuron,
    }


def _default_chunk(layers: list[tuple[Tensor, Tensor]]) -> int:
    widest = max(W.shape[0] for W, _ in layers)
    # Assume up to ~64 pieces per segment when sizing; chunks only bound memory, results do not depend on them.
    return max(1, _CHUNK_ELEMENTS // (64 * widest))


# The CPU path runs the compiled sequential kernel (utils/geometry/regions_kernel.py); other devices (CUDA) run the
# batched torch code above, which tests also run on the CPU by setting this to False.
COMPILED_ON_CPU = True


def _compiled_pieces(
    layers: list[tuple[Tensor, Tensor]],
    base: Tensor,
    direction: Tensor,
    t0: Tensor,
    t1: Tensor,
    tol_t: Tensor,
    unbounded: bool,
    rel_tol: float,
) -> dict[str, Tensor]:
    """The pieces of _split_chunk, for all segments, from the compiled kernel (numba is imported on first use)."""
    from utils.geometry.regions_kernel import split_segments

    widths = np.array([W.shape[0] for W, _ in layers], dtype=np.int64)
    wts = [W.T.contiguous().numpy().ravel() for W, _ in layers]  # W^T: the kernel adds rows of it (see _affine)
    w_off = np.cumsum([0] + [w.size for w in wts])[:-1].astype(np.int64)
    b_off = np.cumsum([0] + widths.tolist())[:-1].astype(np.int64)
    word_off = np.array(word_offsets(widths.tolist()) + [sum(words_per_layer(widths.tolist()))], dtype=np.int64)
    arrays = [x.numpy() for x in (base, direction, t0, t1, tol_t)]
    out = split_segments(  # contiguous arrays only, so numba compiles one signature
        np.concatenate(wts), np.concatenate([b.numpy() for _, b in layers]), w_off, b_off, widths, word_off, *[np.ascontiguousarray(x) for x in arrays], bool(unbounded), float(rel_tol),
    )
    keys = ("segment_index", "t_start", "t_end", "opened_by_layer", "opened_by_neuron", "patterns")
    return {k: torch.from_numpy(v) for k, v in zip(keys, out)}  # each a contiguous array of its own: no copies


def _batched_pieces(
    layers: list[tuple[Tensor, Tensor]],
    base: Tensor,
    direction: Tensor,
    t0: Tensor,
    t1: Tensor,
    tol_t: Tensor,
    unbounded: bool,
    chunk: int,
    rel_tol: float,
) -> dict[str, Tensor]:
    """The pieces of _split_chunk, for all segments, chunk segments at a time (batched torch, any device)."""
    parts = []
    for lo in range(0, base.shape[0], chunk):
        hi = min(base.shape[0], lo + chunk)
        out = _split_chunk(layers, base[lo:hi], direction[lo:hi], t0[lo:hi], t1[lo:hi], tol_t[lo:hi], unbounded, rel_tol)
        out["segment_index"] = out["segment_index"] + lo
        parts.append(out)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if len(parts) > 1 else parts[0]


def _run_chunks(
    layers: list[tuple[Tensor, Tensor]],
    base: Tensor,
    direction: Tensor,
    t0: Tensor,
    t1: Tensor,
    tol_t: Tensor,
    unbounded: bool,
    chunk_size: int | None,
    rel_tol: float = 0.0,
) -> PathPieces:
    n = base.shape[0]
    chunk = _default_chunk(layers) if chunk_size is None else chunk_size
    if chunk < 1:
        raise UserError("chunk_size must be a positive number of segments")
    compiled = base.device.type == "cpu" and COMPILED_ON_CPU
    if compiled:  # one segment at a time: chunks would not change memory
        merged = _compiled_pieces(layers, base, direction, t0, t1, tol_t, unbounded, rel_tol)
    else:
        merged = _batched_pieces(layers, base, direction, t0, t1, tol_t, unbounded, chunk, rel_tol)
    seg = merged["segment_index"]
    dt = merged["t_end"] - merged["t_start"]
    length = dt * torch.linalg.vector_norm(direction, dim=1)[seg]
    widths = tuple(W.shape[0] for W, _ in layers)
    opened = merged["opened_by_layer"]
    if compiled:
        from utils.geometry.regions_kernel import count_distinct_rows as count_compiled

        # Transitions per layer: first pieces (-1) land in bin 0, dropped (numpy's bincount: ~4x cheaper here).
        per_layer = np.bincount(opened.numpy() + 1, minlength=len(layers) + 1)[1:]
        # The same count as count_distinct_rows, len(set(map(tuple, patterns))), by a compiled hash table: ~10x
        # cheaper than sorting.
        num_regions = int(count_compiled(merged["patterns"].numpy()))
    else:
        per_layer = torch.bincount(opened[opened >= 0], minlength=len(layers))
        num_regions = count_distinct_rows(merged["patterns"])
    return PathPieces(
        segment_index=seg,
        t_start=merged["t_start"],
        t_end=merged["t_end"],
        length=length,
        patterns=merged["patterns"],
        opened_by_layer=opened,
        opened_by_neuron=merged["opened_by_neuron"],
        layer_widths=widths,
        num_segments=n,
        num_transitions=int(seg.shape[0] - n),
        num_regions=num_regions,
        transitions_per_layer=[int(v) for v in per_layer.tolist()],
    )


def _tolerance(scale_from: list[Tensor], rtol: float) -> float:
    scale = max(float(x.abs().max()) if x.numel() else 0.0 for x in scale_from)
    return rtol * scale


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------
def segment_pieces(
    hidden_layers: HiddenLayers,
    starts: ArrayLike,
    ends: ArrayLike,
    *,
    device: torch.device | str = "cpu",
    chunk_size: int | None = None,
    rtol: float = DEFAULT_RTOL,
) -> PathPieces:
    """Exact pieces of independent input-space segments [starts_i, ends_i] (N, d), parameter t in [0, 1]."""
    layers = as_hidden_layers(hidden_layers, device)
    s, e = _as_point_pairs(starts, ends, layers[0][0].shape[1], device, ("starts", "ends"), "segment")
    direction = e - s
    length = torch.linalg.vector_norm(direction, dim=1)
    tol_x = _tolerance([s, e], rtol)
    # In t units; a zero-length segment gets an infinite tolerance, so it is one piece.
    tol_t = torch.where(length > 0, tol_x / length, torch.full_like(length, float("inf")))
    t0 = torch.zeros_like(length)
    t1 = torch.ones_like(length)
    return _run_chunks(layers, s, direction, t0, t1, tol_t, False, chunk_size)


def path_pieces(
    hidden_layers: HiddenLayers,
    points: ArrayLike,
    *,
    device: torch.device | str = "cpu",
    chunk_size: int | None = None,
    rtol: float = DEFAULT_RTOL,
) -> PathPieces:
    """Exact pieces of the polyline through T input-space points (T, d): segments [x_i, x_{i+1}], i < T - 1."""
    layers = as_hidden_layers(hidden_layers, device)
    x = _as_points(points, layers[0][0].shape[1], device, "points")
    if x.shape[0] < 2:
        raise UserError(f"a path needs at least 2 points, got {x.shape[0]}; pass a longer trajectory")
    return segment_pieces(layers, x[:-1], x[1:], device=device, chunk_size=chunk_size, rtol=rtol)


def count_path(
    hidden_layers: HiddenLayers,
    points: ArrayLike,
    *,
    device: torch.device | str = "cpu",
    chunk_size: int | None = None,
    rtol: float = DEFAULT_RTOL,
) -> PathCounts:
    """Totals (num_transitions, num_regions, transitions per layer) along the polyline through points (T, d)."""
    p = path_pieces(hidden_layers, points, device=device, chunk_size=chunk_size, rtol=rtol)
    return PathCounts(p.num_transitions, p.num_regions, p.transitions_per_layer)


def line_regions(
    hidden_layers: HiddenLayers,
    points: ArrayLike,
    directions: ArrayLike,
    *,
    device: torch.device | str = "cpu",
    chunk_size: int | None = None,
    rtol: float = DEFAULT_RTOL,
) -> LineRegions:
    """Regions crossed by each whole input-space line points_i + t directions_i, t in (-inf, inf)."""
    layers = as_hidden_layers(hidden_layers, device)
    p, u = _as_point_pairs(points, directions, layers[0][0].shape[1], device, ("points", "directions"), "line")
    norm = torch.linalg.vector_norm(u, dim=1)
    if bool((norm == 0).any()):
        raise UserError("every line direction must be nonzero; drop lines whose two defining points coincide")
    tol_x = _tolerance([p, u], rtol)
    tol_t = tol_x / norm
    t0 = torch.full_like(norm, float("-inf"))
    t1 = torch.full_like(norm, float("inf"))
    pieces = _run_chunks(layers, p, u, t0, t1, tol_t, True, chunk_size, rel_tol=rtol)
    # A convex region meets a line in one interval, so distinct (line, pattern) pairs = pieces, up to round-off.
    keyed = torch.cat([pieces.segment_index[:, None], pieces.patterns], dim=1)
    order, first = first_of_distinct(keyed)
    num_regions = torch.bincount(keyed[order[first], 0], minlength=p.shape[0])
    return LineRegions(num_regions=num_regions, pieces=pieces)


def lines_through(points: ArrayLike, anchor: ArrayLike, *, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(points, directions) of the lines through each input-space point and an anchor (d,), e.g. the mean state;
    a scalar anchor is that value in every coordinate, so ``anchor=0`` gives the lines through the origin."""
    p = as_float64(points, device, "points")
    a = as_float64(anchor, device, "anchor")
    if a.ndim == 0 and p.ndim == 2:
        a = a.expand(p.shape[1])
    if p.ndim != 2 or a.shape != (p.shape[1],):
        raise UserError(f"points must be (N, d) and anchor (d,), got {tuple(p.shape)} and {tuple(a.shape)}")
    return p, p - a


def input_jacobian(
    hidden_layers: HiddenLayers, head: tuple[ArrayLike, ArrayLike], patterns: Tensor, *, device: torch.device | str = "cpu"
) -> Tensor:
    """Jacobian (R, act_dim, d) of the action mean w.r.t. the input on each region given by packed patterns (R, W)."""
    layers = as_hidden_layers(hidden_layers, device)
    W_out, _ = as_head(head, layers[-1][0].shape[0], device)
    widths = [W.shape[0] for W, _ in layers]
    bits = unpack_patterns(patterns.to(device), widths).to(torch.float64)
    jac = None
    col = 0
    for (W, _), w in zip(layers, widths):
        mask = bits[:, col:col + w, None]
        jac = mask * (W.expand(bits.shape[0], -1, -1) if jac is None else W @ jac)
        col += w
    return W_out @ jac
