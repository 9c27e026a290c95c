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
TRAJECTORY_COLOR = "#e4002b"  # saturated red: region colours are pastel, edges dark grey
TRAJECTORY_WIDTH = 2.0  # points, single panels; 3/4 of it in contact sheets and comparisons
CLIP_LABEL = "clip boundary (±10 std)"
LEGEND_STRIP = 0.3  # inches below the panels of a multi-panel figure for its one legend
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
               panel_inches: float = 5.0, show_label: bool = True, axis_labels: bool = True):
    """Draw one partition on `ax`: filled polygons with thin edges plus the plane's overlays, each overlay labelled
    for a legend (render_panels draws one per figure); returns the PolyCollection (a ScalarMappable for colour
    bars when the colouring is continuous). Without `axis_labels` the figure carries them (shared by panels)."""
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
    if frame.clip is not None and len(frame.clip) >= 3:
        ax.add_patch(Polygon(frame.clip, closed=True, fill=False, ls=(0, (4, 2.5)), lw=1.0, ec="black", zorder=3,
                             label=CLIP_LABEL))
    if plane.kind == "states":
        ax.set_aspect("equal")
        c = plane.state_coords
        ax.scatter(c[:, 0], c[:, 1], s=34, c="white", edgecolors="black", linewidths=1.0, zorder=5)
        for i, (u, v) in enumerate(c):
            ax.annotate(f"s{chr(0x2081 + i)}", (u, v), xytext=(5, 4), textcoords="offset points", fontsize=9,
                        fontweight="bold", zorder=6, path_effects=outline)
    else:
        if frame.trajectory is not None and len(frame.trajectory):
            t = frame.trajectory
            width = TRAJECTORY_WIDTH * (0.75 if compact else 1.0)
            # A saturated colour no region gets (region colours are pastel) on a white halo: it never reads as an
            # edge of the partition, which is thin and dark grey.
            ax.plot(t[:, 0], t[:, 1], color=TRAJECTORY_COLOR, lw=width, zorder=4, solid_capstyle="round",
                    path_effects=[patheffects.withStroke(linewidth=width + 2.6, foreground="white"),
                                  patheffects.Normal()],
                    label="deterministic trajectory")
            ax.scatter(t[:1, 0], t[:1, 1], s=42 if not compact else 26, marker="o", c="white", edgecolors="black",
                       linewidths=1.1, zorder=6, label="start")
        if frame.target is not None:
            ax.scatter([frame.target[0]], [frame.target[1]], s=140 if not compact else 80, marker="*", c="#ffcc33",
                       edgecolors="black", linewidths=0.9, zorder=7, label="target")
    if axis_labels:
        ax.set_xlabel(plane.axis_labels[0])
        ax.set_ylabel(plane.axis_labels[1])
    ax.set_title(frame_title(frame, compact, show_label))
    return coll


# --------------------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------------------
def render_panels(frames: Sequence[PlaneFrame], *, ncols: int | None = None, panel_size: tuple[float, float] = (5.0, 5.0),
                  dpi: int = 150, norm: Normalize | None = None, compact: bool = False,
                  suptitle: str | None = None, show_label: bool = True) -> Figure:
    """A figure with one panel per frame on a grid (row-major), one legend of the overlays below the panels and,
    for continuous colourings, one shared colour bar. Its size is exactly ncols * panel_size[0] by
    nrows * panel_size[1] inches (+ colour bar strip, + title strip). Several panels show the same plane, so they
    share the axis labels (once for the figure) and the tick labels (outer panels only). A grid short of panels
    leaves its last cells empty: pass a multiple of ncols frames for a full sheet."""
    import matplotlib as mpl

    n = len(frames)
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    continuous = frames[0].values is not None
    norm = norm or (shared_norm(frames) if continuous else None)
    width = ncols * panel_size[0] + (0.9 if continuous else 0.0)
    height = nrows * panel_size[1] + (0.4 if suptitle else 0.0)
    shared = n > 1
    with mpl.rc_context(STYLE):
        # 'compressed' packs equal-aspect panels (planes through three states) and keeps titles clear of them.
        fig = Figure(figsize=(width, height), dpi=dpi,
                     layout="compressed" if frames[0].plane.kind == "states" else "constrained")
        FigureCanvasAgg(fig)
        panels, legend_strip = fig, fig
        if shared and _has_overlays(frames):
            # The legend gets its own strip below the panels: in one constrained layout a figure legend and the
            # shared axis labels (or the title) would be placed on top of each other.
            panels, legend_strip = fig.subfigures(2, 1, height_ratios=[height - LEGEND_STRIP, LEGEND_STRIP])
        grid = panels.subplots(nrows, ncols, squeeze=False)
        axes = list(grid.flat)
        for ax in axes[n:]:
            ax.remove()
        axes = axes[:n]
        mappable = None
        for k, ax in enumerate(axes):
            mappable = draw_frame(ax, frames[k], norm=norm, compact=compact, panel_inches=min(panel_size),
                                  show_label=show_label, axis_labels=not shared)
            if shared:  # every panel shows the same plane: tick labels on the outer panels say it once
                ax.tick_params(labelbottom=k + ncols >= n, labelleft=k % ncols == 0)
        if shared:
            plane = frames[0].plane
            panels.supxlabel(plane.axis_labels[0], fontsize=STYLE["axes.labelsize"])
            panels.supylabel(plane.axis_labels[1], fontsize=STYLE["axes.labelsize"])
        handles = _legend_handles(axes)
        if handles:  # outside the panels, so it covers no region; one row, so it costs little height
            legend_strip.legend(handles=handles, loc="center" if legend_strip is not fig else "outside lower center",
                                ncol=len(handles), frameon=False, handlelength=1.8, columnspacing=1.4,
                                markerscale=0.8 if compact else 1.0)
        if continuous and mappable is not None:
            panels.colorbar(mappable, ax=axes, shrink=0.85 if nrows == 1 else 0.6, aspect=30, pad=0.02,
                            label=COLORBAR_LABELS[frames[0].color])
        if suptitle:
            panels.suptitle(suptitle, fontsize=10.5)
    return fig


def _has_overlays(frames: Sequence[PlaneFrame]) -> bool:
    """True when some frame draws a labelled overlay (clip boundary, trajectory, target): the legend's entries."""
    return any((f.clip is not None and len(f.clip) >= 3) or f.plane.kind == "state_space" for f in frames)


def _legend_handles(axes) -> list:
    """One handle per overlay label over all panels, in the order of first appearance (the clip boundary may be
    in some frames only)."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    return list(handles.values())


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
