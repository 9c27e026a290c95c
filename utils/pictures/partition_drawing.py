"""Drawing exact plane partitions (``utils.pictures.state_planes.PlaneFrame``) with matplotlib's Agg backend: filled
polygons in one PolyCollection, stable per-pattern colours, overlays, figures, GIFs and contact sheets.

Figures are built as ``matplotlib.figure.Figure`` objects (never pyplot), at a fixed size, so an image is always
``figsize x dpi`` pixels. No LaTeX is used.
"""
from __future__ import annotations

import io
import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # must precede any pyplot import anywhere in the process; harmless when already set

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize, hsv_to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from PIL import Image

from utils.pictures.figure_files import figure_bytes as encode_figure
from utils.pictures.state_planes import PlaneFrame, policy_patterns

EDGE_COLOR = "#2a2a2a"
CMAPS = {"action": "viridis", "slope": "magma"}
COLORBAR_LABELS = {"action": "‖action mean‖ at region centroid", "slope": "‖Jacobian‖ of action mean (normalized input)"}
STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
}
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# --------------------------------------------------------------------------------------------------------------
# Colours
# --------------------------------------------------------------------------------------------------------------
def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A well-mixing 64-bit hash (SplitMix64 finalizer), elementwise on uint64."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def pattern_hashes(patterns: np.ndarray) -> np.ndarray:
    """A 64-bit hash (R,) of each packed activation pattern (R, W); equal patterns always hash equal."""
    words = np.ascontiguousarray(patterns, dtype=np.int64).view(np.uint64)
    h = np.full(words.shape[0], 0x243F6A8885A308D3, dtype=np.uint64)
    for k in range(words.shape[1]):
        h = _splitmix64(h ^ words[:, k])
    return h


def pattern_colors(patterns: np.ndarray) -> np.ndarray:
    """Stable RGB colours (R, 3) of activation patterns: hue from the pattern's hash, with slight jitter of
    saturation and brightness, so a region keeps its colour in every frame and neighbours rarely look alike."""
    h = pattern_hashes(patterns)
    hue = (h >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    sat = 0.18 + 0.20 * ((h >> np.uint64(20)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    val = 0.84 + 0.13 * ((h >> np.uint64(8)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    return hsv_to_rgb(np.stack([hue, sat, val], axis=1))


def edge_width(num_regions: int, panel_inches: float = 5.0) -> float:
    """Edge line width (points): thin, and thinner when regions are many and small."""
    density = num_regions / max(panel_inches, 1.0) ** 2
    return float(np.clip(0.45 / math.sqrt(max(density, 1.0) / 4.0), 0.08, 0.35))


def shared_norm(frames: Sequence[PlaneFrame]) -> Normalize | None:
    """One colour scale for every frame of a continuous colouring (so frames are comparable), else None."""
    values = [f.values for f in frames if f.values is not None and len(f.values)]
    if not values:
        return None
    lo = min(float(np.min(v)) for v in values)
    hi = max(float(np.max(v)) for v in values)
    if hi <= lo:
        hi = lo + 1e-12 if lo == 0 else lo * (1 + 1e-6) + 1e-12
    return Normalize(lo, hi)


# --------------------------------------------------------------------------------------------------------------
# One panel
# --------------------------------------------------------------------------------------------------------------
def frame_title(frame: PlaneFrame, compact: bool = False, show_label: bool = True) -> str:
    """Title of a panel: env and widths, checkpoint iteration and timesteps, region count (compact: without env,
    and without run and widths unless `show_label`)."""
    p = frame.policy
    widths = "c" + ",".join(str(w) for w in p.widths)
    regions = f"{frame.num_regions:,} regions"
    if compact:
        head = "" if not show_label else f"{frame.label} · {widths} · " if frame.label else f"{widths} · "
        return f"{head}it {p.iteration} · {p.timesteps:,} steps\n{regions}"
    label = f"{frame.label} · " if frame.label else ""
    return f"{frame.env_id} · {widths} · {label}iteration {p.iteration} ({p.timesteps:,} steps)\n{regions}"


def draw_frame(ax, frame: PlaneFrame, *, norm: Normalize | None = None, compact: bool = False,
               panel_inches: float = 5.0, legend: bool = True, show_label: bool = True):
    """Draw one partition on `ax`: filled polygons with thin edges plus the plane's overlays; returns the
    PolyCollection (a ScalarMappable for colour bars when the colouring is continuous)."""
    part = frame.partition
    verts = part.vertices.cpu().numpy()  # padding repeats the last vertex, which draws nothing
    lw = edge_width(frame.num_regions, panel_inches)
    coll = PolyCollection(verts, edgecolors=EDGE_COLOR, linewidths=lw, antialiaseds=True, zorder=1)
    if frame.values is None:
        coll.set_facecolor(pattern_colors(policy_patterns(frame.policy, part).cpu().numpy()))
    else:
        coll.set_array(frame.values)
        coll.set_cmap(CMAPS[frame.color])
        coll.set_norm(norm or Normalize(float(np.min(frame.values)), float(np.max(frame.values))))
    ax.add_collection(coll)

    plane = frame.plane
    (x0, x1), (y0, y1) = plane.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    outline = [patheffects.withStroke(linewidth=2.2, foreground="white")]
    handles = []
    if frame.clip is not None and len(frame.clip) >= 3:
        ax.add_patch(Polygon(frame.clip, closed=True, fill=False, ls=(0, (4, 2.5)), lw=1.0, ec="black", zorder=3,
                             label="clip boundary (±10 std)"))
        handles.append(ax.patches[-1])
    if plane.kind == "states":
        ax.set_aspect("equal")
        c = plane.state_coords
        ax.scatter(c[:, 0], c[:, 1], s=34, c="white", edgecolors="black", linewidths=1.0, zorder=5)
        for i, (u, v) in enumerate(c):
            ax.annotate(f"s{chr(0x2081 + i)}", (u, v), xytext=(5, 4), textcoords="offset points", fontsize=9,
                        fontweight="bold", zorder=6, path_effects=outline)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(plane.axis_labels[0])
        ax.set_ylabel(plane.axis_labels[1])
    else:
        ax.set_xlabel(plane.axis_labels[0])
        ax.set_ylabel(plane.axis_labels[1])
        if frame.trajectory is not None and len(frame.trajectory):
            t = frame.trajectory
            handles += ax.plot(t[:, 0], t[:, 1], color="black", lw=1.1, alpha=0.9, zorder=4,
                               path_effects=[patheffects.withStroke(linewidth=2.4, foreground="white", alpha=0.8)],
                               label="deterministic trajectory")
            handles.append(ax.scatter(t[:1, 0], t[:1, 1], s=42, marker="o", c="white", edgecolors="black",
                                      linewidths=1.1, zorder=6, label="start"))
        if frame.target is not None:
            handles.append(ax.scatter([frame.target[0]], [frame.target[1]], s=140, marker="*", c="#ffcc33",
                                      edgecolors="black", linewidths=0.9, zorder=7, label="target"))
    if legend and handles:
        ax.legend(handles=handles, loc="upper left", frameon=True, framealpha=0.85, borderpad=0.4,
                  handlelength=1.6, fancybox=False, edgecolor="0.6", fontsize=6 if compact else None,
                  markerscale=0.7 if compact else 1.0)
    ax.set_title(frame_title(frame, compact, show_label))
    return coll


# --------------------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------------------
def render_panels(frames: Sequence[PlaneFrame], *, ncols: int | None = None, panel_size: tuple[float, float] = (5.0, 5.0),
                  dpi: int = 150, norm: Normalize | None = None, compact: bool = False,
                  suptitle: str | None = None, show_label: bool = True) -> Figure:
    """A figure with one panel per frame on a grid (row-major) and, for continuous colourings, one shared colour
    bar. Its size is exactly ncols * panel_size[0] by nrows * panel_size[1] inches (+ colour bar strip)."""
    import matplotlib as mpl

    n = len(frames)
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    continuous = frames[0].values is not None
    norm = norm or (shared_norm(frames) if continuous else None)
    width = ncols * panel_size[0] + (0.9 if continuous else 0.0)
    height = nrows * panel_size[1] + (0.4 if suptitle else 0.0)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        mappable = None
        for k, ax in enumerate(axes.flat):
            if k >= n:
                ax.set_axis_off()
                continue
            mappable = draw_frame(ax, frames[k], norm=norm, compact=compact, panel_inches=min(panel_size),
                                  legend=not compact or k == 0, show_label=show_label)
        if continuous and mappable is not None:
            fig.colorbar(mappable, ax=axes, shrink=0.85 if nrows == 1 else 0.6, aspect=30, pad=0.02,
                         label=COLORBAR_LABELS[frames[0].color])
        if suptitle:
            fig.suptitle(suptitle, fontsize=10.5)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure encoded as png, pdf or svg at its own size and dpi."""
    return encode_figure(fig, fmt, producer="deep_rl_regions visualize_hd.py", rc=STYLE)


def figure_image(fig: Figure) -> Image.Image:
    """The figure rasterized by Agg as an RGB Pillow image (exactly figsize x dpi pixels)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def gif_bytes(images: Sequence[Image.Image], frame_ms: int = 700, last_frame_ms: int | None = None) -> bytes:
    """An endlessly looping animated GIF with one frame per image (adaptive 256-colour palette per frame)."""
    frames = [im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
              for im in images]
    durations = [frame_ms] * len(frames)
    if last_frame_ms is not None and durations:
        durations[-1] = last_frame_ms
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   disposal=1, optimize=False)
    return buf.getvalue()
