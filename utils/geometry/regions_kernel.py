"""Compiled CPU kernel of the 1-D region computation in ``utils.geometry.regions`` (numba, cached on disk).

One segment (or line) at a time, one layer at a time, one piece at a time: the plain sequential form of the
algorithm in docs/design.md, "Algorithms", with the conventions of the regions module docstring. Within a piece the
earlier layers' patterns are fixed, so the current layer's pre-activations are affine in t, z(t) = z0 + t zs; every
zero strictly inside the piece and farther than tol from both its ends splits it, zeros within tol of the previous
zero join its transition, and each new piece's bits are the signs at its own evaluation point te.

A piece is *loose* when a neuron of the layers so far changes sign strictly inside it without opening a transition
there (a zero within tol of an end, or a later zero of a merged transition); its sub-pieces inherit that. The
sub-pieces of a loose piece that splits redo the forward pass at their own te (an earlier layer's bit may differ
from the parent's there); every other sub-piece keeps its parent's earlier bits and affine map, which are its own.

Imported only where a CPU count is made, so commands that never count do not load numba.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# error_model="numpy": z0 / 0 is +-inf or nan (never inside a piece), as in numpy, instead of raising.
_jit = njit(cache=True, nogil=True, error_model="numpy")
# Small helpers called per piece or per row are inlined into their caller (numba IR inlining): as separate functions,
# each call passes every array as a struct on the stack, which costs more than a 16-wide row of work.
_inline = njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_jit
def _grown(a, size):
    """``a`` with room for at least ``size`` rows (doubling), its rows kept."""
    if size <= a.shape[0]:
        return a
    out = np.empty((max(size, 2 * a.shape[0]),) + a.shape[1:], a.dtype)
    out[: a.shape[0]] = a
    return out


@_inline
def _affine(wt, bias, w_off, b_off, layer, n_in, width, a, c, z0, zs):
    """Layer ``layer``'s pre-activation on a piece whose layer input is a + t c: z0 = W a + b, zs = W c (wt holds
    W^T row after row, so this adds rows of W^T: a loop over j, not a reduction, vectorizes without reordering)."""
    for j in range(width):
        z0[j] = bias[b_off[layer] + j]
        zs[j] = 0.0
    for k in range(n_in):
        if a[k] != 0.0 or c[k] != 0.0:  # an off neuron of the previous layer adds nothing
            row = w_off[layer] + k * width
            _add_row(wt[row : row + width], a[k], c[k], z0, zs)


@_inline
def _add_row(w, ak, ck, z0, zs):
    """z0 += ak w, zs += ck w for a row w of W^T (a view: indexing it from 0 lets the loop vectorize)."""
    for j in range(w.shape[0]):
        z0[j] += ak * w[j]
        zs[j] += ck * w[j]


@_inline
def _add_rows4(wt, r1, r2, r3, r4, a1, a2, a3, a4, c1, c2, c3, c4, z, cn, s, n):
    """Four _add_row calls in one pass, for the rows of W^T at wt[r1:r1 + n], ..., wt[r4:r4 + n]: z0 += a1 w1, then
    += a2 w2, += a3 w3, += a4 w4 (zs likewise with c), each element rounded after every step in that order, so the
    result is bit-identical to four _add_row calls; [z0, zs] = z[cn, s] is loaded and stored once instead of four
    times. Indices, not views (a view costs reference counting); unsigned, so no wraparound check blocks
    vectorization."""
    for j in range(n):
        ju = np.uint64(j)
        w1, w2, w3, w4 = wt[r1 + ju], wt[r2 + ju], wt[r3 + ju], wt[r4 + ju]
        u = z[cn, s, 0, j] + a1 * w1
        u = u + a2 * w2
        u = u + a3 * w3
        z[cn, s, 0, j] = u + a4 * w4
        v = z[cn, s, 1, j] + c1 * w1
        v = v + c2 * w2
        v = v + c3 * w3
        z[cn, s, 1, j] = v + c4 * w4


@_inline
def _apply(layer, width, word_off, z0, zs, te, words, a, c):
    """Set the layer's bits (z0 + te zs > 0) in ``words`` and write the next layer's input a + t c (relu-masked z)."""
    for j in range(width):
        if z0[j] + te * zs[j] > 0:
            words[word_off[layer] + j // 64] |= np.int64(1) << np.int64(j % 64)
            a[j], c[j] = z0[j], zs[j]
        else:
            a[j], c[j] = 0.0, 0.0


@_inline
def _set_bits(layer, width, word_off, z, cz, p, te, words, cw, s, pos):
    """Set the layer's bits of piece s, words[s], to z0 + te zs > 0 for [z0, zs] = z[p] (no views: cheaper per piece).
    Branch-free: the signs first (a vectorized loop from 0, so no gathers; ``pos``: int64 scratch of length >= width),
    then each word as an OR of sign << bit; a branch per neuron would be mispredicted about half the time."""
    for j in range(width):
        pos[j] = z[cz, p, 0, j] + te * z[cz, p, 1, j] > 0
    for wi in range((width + 63) // 64):
        acc = np.int64(0)
        for b in range(min(64, width - 64 * wi)):
            acc |= pos[64 * wi + b] << np.int64(b)
        words[cw, s, word_off[layer] + wi] |= acc


@_inline
def _next_layer(wt, bias, w_off, b_off, layer, width, width_next, word_off, z, cz, p, words, cn, lo, hi, on):
    """The next layer's pre-activation on pieces lo..hi-1 that share this layer's [z0, zs] = z[cz, p] and differ in
    its bits words[cn, s] (z[cz] / z[cn]: the halves before / after the layer of split_segments' double buffers):
    z_next[s] = z[cn, s] = W (bits_s * z0) + b, W (bits_s * zs), each sum in the order of _affine (as if by _affine on
    the masked input: rows of W^T for the on neurons k, in increasing k). The on neurons of each piece are listed first
    without branches (``on``: scratch of length >= width), so the row loop has no unpredictable branch."""
    for s in range(lo, hi):
        n_on = 0
        for k in range(width):  # on[n_on] = k; n_on += bit k of piece s
            on[n_on] = k
            n_on += (words[cn, s, word_off[layer] + k // 64] >> np.int64(k % 64)) & 1
        for j in range(width_next):
            z[cn, s, 0, j] = bias[b_off[layer + 1] + j]
            z[cn, s, 1, j] = 0.0
        w0, n = w_off[layer + 1], width_next
        r = 0
        while r + 4 <= n_on:  # rows k1 < k2 < k3 < k4 at once, added in that order (see _add_rows4)
            k1, k2, k3, k4 = on[r], on[r + 1], on[r + 2], on[r + 3]
            _add_rows4(wt, np.uint64(w0 + k1 * n), np.uint64(w0 + k2 * n), np.uint64(w0 + k3 * n),
                       np.uint64(w0 + k4 * n), z[cz, p, 0, k1], z[cz, p, 0, k2], z[cz, p, 0, k3], z[cz, p, 0, k4],
                       z[cz, p, 1, k1], z[cz, p, 1, k2], z[cz, p, 1, k3], z[cz, p, 1, k4], z, cn, s, n)
            r += 4
        for r in range(r, n_on):
            k = on[r]
            _add_row(wt[w0 + k * n : w0 + k * n + n], z[cz, p, 0, k], z[cz, p, 1, k], z[cn, s, 0], z[cn, s, 1])


@_inline
def _eval_t(t0, t1, unbounded):
    """Where a piece's pattern is taken: the midpoint; on a line one unit inside a finite end, 0 if none."""
    if not unbounded:
        return 0.5 * (t0 + t1)
    if np.isinf(t0) and np.isinf(t1):
        return 0.0
    if np.isinf(t0):
        return t1 - 1.0
    if np.isinf(t1):
        return t0 + 1.0
    return 0.5 * (t0 + t1)


@_inline
def _inwards(t, tol, rel_tol):
    """t moved inwards by the tolerance at t (tol signed: + from a start, - from an end); infinite t stays."""
    return t if np.isinf(t) else t + tol + np.sign(tol) * rel_tol * abs(t)


@_inline
def _sort_zeros(zt, zj, n):
    """Sort the first n zeros (t, neuron) by t; stable (insertion sort: a piece has few zeros), so ties keep neuron
    order."""
    for r in range(1, n):
        t, j, k = zt[r], zj[r], r - 1
        while k >= 0 and zt[k] > t:
            zt[k + 1], zj[k + 1] = zt[k], zj[k]
            k -= 1
        zt[k + 1], zj[k + 1] = t, j


@_jit
def _grown2(a, size):
    """Double buffer ``a`` (2, n, ...) with room for at least ``size`` rows in each half (doubling), its rows kept."""
    if size <= a.shape[1]:
        return a
    out = np.empty((2, max(size, 2 * a.shape[1])) + a.shape[2:], a.dtype)
    out[:, : a.shape[1]] = a
    return out


@_jit
def split_segments(wt, bias, w_off, b_off, widths, word_off, base, direction, t_lo, t_hi, tol_t, unbounded, rel_tol):
    """Pieces of x(t) = base_i + t direction_i, t in [t_lo_i, t_hi_i], for every i; returns (segment index, t_start,
    t_end, opening layer, opening neuron, all (P,); packed patterns (P, word_off[-1])), ordered by segment, then t. Weights: layer l's W^T (in, width) flattened at wt[w_off[l]:], its bias at bias[b_off[l]:]."""
    n_seg, d = base.shape
    n_layers = widths.shape[0]
    n_words = word_off[-1]
    wmax = max(d, widths.max())
    # Pieces of the current segment before (half c) and after (half x = 1 - c) the current layer, as double buffers
    # indexed by c (swapping eight arrays per layer costs reference counting): [t0, t1]; [opening layer, opening
    # neuron, loose]; the current layer's pre-activation [z0, zs] (affine in t: z0 + t zs); packed words.
    T, I = np.empty((2, 8, 2)), np.empty((2, 8, 3), np.int64)
    Z, Wd = np.empty((2, 8, 2, wmax)), np.empty((2, 8, n_words), np.int64)
    zt, zj, h, on = np.empty(wmax), np.empty(wmax, np.int64), np.empty((2, wmax)), np.empty(wmax, np.int64)
    ratio = np.empty(wmax)
    out_seg, out_t0, out_t1 = np.empty(n_seg, np.int64), np.empty(n_seg), np.empty(n_seg)
    out_l, out_j, out_w = np.empty(n_seg, np.int64), np.empty(n_seg, np.int64), np.empty((n_seg, n_words), np.int64)
    n_out = 0
    for i in range(n_seg):
        tol = tol_t[i]
        n, c = 1, 0
        T[c, 0, 0], T[c, 0, 1] = t_lo[i], t_hi[i]
        I[c, 0, 0], I[c, 0, 1], I[c, 0, 2] = -1, -1, 0
        for k in range(n_words):
            Wd[c, 0, k] = 0
        _affine(wt, bias, w_off, b_off, 0, d, widths[0], base[i], direction[i], Z[c, 0, 0], Z[c, 0, 1])
        for layer in range(n_layers):
            width = widths[layer]
            last = layer == n_layers - 1
            x = 1 - c
            m = 0  # pieces after this layer so far
            for p in range(n):
                t0, t1 = T[c, p, 0], T[c, p, 1]
                # Zeros t = -z0 / zs strictly inside (t0, t1) are crossings; those farther than tol from both ends
                # split the piece (zero slope gives +-inf or nan, never inside).
                lo, hi = _inwards(t0, tol, rel_tol), _inwards(t1, -tol, rel_tol)
                # The plain loop: for each j, ratio = z0_j / zs_j; if -t1 < ratio < -t0: crossings += 1, and if
                # lo < -ratio < hi, append (-ratio, j) to the zeros. Done as a vectorized division, then a branch-free
                # pass that always writes the candidate and advances nz only when it splits.
                for j in range(width):
                    ratio[j] = Z[c, p, 0, j] / Z[c, p, 1, j]
                crossings, nz = 0, 0
                for j in range(width):
                    rj = ratio[j]
                    inside = (rj < -t0) & (rj > -t1)
                    zt[nz], zj[nz] = -rj, j
                    nz += inside & (-rj > lo) & (-rj < hi)
                    crossings += inside
                _sort_zeros(zt, zj, nz)
                size = m + 1 + nz
                if size > T.shape[1]:
                    T, I, Z, Wd = _grown2(T, size), _grown2(I, size), _grown2(Z, size), _grown2(Wd, size)
                # Sub-pieces: a zero farther than tol from the previous one opens one; closer ones join its transition.
                q = m
                T[x, q, 0], I[x, q, 0], I[x, q, 1] = t0, I[c, p, 0], I[c, p, 1]
                for r in range(nz):
                    if r == 0 or zt[r] - zt[r - 1] > tol + rel_tol * abs(zt[r - 1]):
                        T[x, q, 1] = zt[r]
                        q += 1
                        T[x, q, 0], I[x, q, 0], I[x, q, 1] = zt[r], layer, zj[r]
                T[x, q, 1] = t1
                transitions = q - m
                loose = I[c, p, 2] == 1 or crossings > transitions
                for s in range(m, q + 1):
                    I[x, s, 2] = loose
                    te = _eval_t(T[x, s, 0], T[x, s, 1], unbounded)
                    for k in range(n_words):
                        Wd[x, s, k] = Wd[c, p, k]
                    if loose and transitions > 0:
                        # Forward pass from the input at this sub-piece's own te: all bits so far (an earlier layer's
                        # may differ from the parent's), and the next layer's pre-activation from them.
                        Wd[x, s, : word_off[layer + 1]] = 0
                        h[0, :d], h[1, :d] = base[i], direction[i]
                        n_in = d
                        for k in range(layer + 1):
                            _affine(wt, bias, w_off, b_off, k, n_in, widths[k], h[0], h[1], Z[x, s, 0], Z[x, s, 1])
                            _apply(k, widths[k], word_off, Z[x, s, 0], Z[x, s, 1], te, Wd[x, s], h[0], h[1])
                            n_in = widths[k]
                        if not last:
                            _affine(wt, bias, w_off, b_off, layer + 1, width, widths[layer + 1], h[0], h[1],
                                    Z[x, s, 0], Z[x, s, 1])
                        continue
                    _set_bits(layer, width, word_off, Z, c, p, te, Wd, x, s, on)
                if not last and not (loose and transitions > 0):
                    _next_layer(wt, bias, w_off, b_off, layer, width, widths[layer + 1], word_off, Z, c, p, Wd, x,
                                m, q + 1, on)
                m = q + 1
            n, c = m, x
        size = n_out + n
        if size > out_seg.shape[0]:
            out_seg, out_t0, out_t1 = _grown(out_seg, size), _grown(out_t0, size), _grown(out_t1, size)
            out_l, out_j, out_w = _grown(out_l, size), _grown(out_j, size), _grown(out_w, size)
        for r in range(n):  # element by element: slices would cost reference counting per segment
            out_seg[n_out + r] = i
            out_t0[n_out + r], out_t1[n_out + r] = T[c, r, 0], T[c, r, 1]
            out_l[n_out + r], out_j[n_out + r] = I[c, r, 0], I[c, r, 1]
            for k in range(n_words):
                out_w[n_out + r, k] = Wd[c, r, k]
        n_out = size
    return out_seg[:n_out], out_t0[:n_out], out_t1[:n_out], out_l[:n_out], out_j[:n_out], out_w[:n_out]


@_jit
def count_distinct_rows(words):
    """Number of distinct rows of an int64 matrix (N, k), e.g. packed patterns: the plain operation is
    len(set(map(tuple, words))), done with an open-addressing hash table of row indices (linear probing; rows whose
    hashes meet are compared word by word, so the count is exact whatever the hash)."""
    n, k = words.shape
    size = 1
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.full(size, -1, np.int64)  # row index, or -1 for an empty slot
    distinct = 0
    for i in range(n):
        h = np.uint64(0x9E3779B97F4A7C15)
        for c in range(k):  # mix each word in (multiply-xorshift, as in splitmix64)
            h ^= np.uint64(words[i, c])
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
        slot = h & mask
        while True:
            r = table[slot]
            if r < 0:
                table[slot] = i
                distinct += 1
                break
            same = True
            for c in range(k):
                if words[r, c] != words[i, c]:
                    same = False
                    break
            if same:
                break
            slot = (slot + np.uint64(1)) & mask
    return distinct
