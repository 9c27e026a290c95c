"""Paper-style figures of the evaluation against timesteps trained: per run, and per sweep by architecture.

Conventions (README "Evaluation", docs/design.md "Figures"):
- Size: one journal column wide (3.4 in) with 7-8 pt text, so a figure placed at single-column width stays readable;
  every figure is png (300 dpi), pdf or svg (`figure_files.FORMATS`).
- Legends sit below the axes, outside the data area, one entry per curve; titles name the panel, never a run id.
- Run figures: the fixed trajectory blue, the current one orange; the deterministic policy solid, the stochastic one
  dashed. Random lines and random trajectories have a band of mean +- std over the lines (trajectories) of the
  checkpoint, with the lower edge clipped at 0: every quantity drawn that way (region counts, transitions per
  length) is non-negative (`std_band`).
- Sweep figures: one colour per architecture, the same in every figure of the sweep (`architecture_colors`:
  architectures sorted by neurons, depth and name onto tab10). A curve is the mean over the architecture's seeds
  (runs), its band spans the minimum to the maximum over the seeds (`seed_band`): never below zero for non-negative
  data, and honest for the 2-5 seeds a sweep has (a std band needs more seeds to mean anything). Each quantity that
  exists for both trajectory types or both policy types gets one panel per type, so four architectures stay
  readable.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter

from utils.pictures.figure_files import figure_bytes
from utils.runs.io import write_bytes_if_changed

COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper
PANEL_HEIGHT = 1.9  # inches per row of panels, legend excluded
PNG_DPI = 300
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "lines.linewidth": 1.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
TRAJ_COLORS = {"fixed": "tab:blue", "current": "tab:orange"}
POLICY_STYLES = {"deterministic": "-", "stochastic": "--"}
LINE_COLORS = {"origin": "tab:green", "mean": "tab:purple"}
ARCHITECTURE_PALETTE = "tab10"
BAND_ALPHA = 0.15  # light enough that four overlapping bands leave every mean line visible
POLICY_TYPES = ("deterministic", "stochastic")
TRAJECTORY_TYPES = ("fixed", "current")


# ----------------------------------------------------------------------------------------------------------------
# Bands and colours
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Band:
    """A curve over seeds on a common grid: the mean, and the band from the minimum to the maximum over seeds."""

    grid: np.ndarray    # (G,) timesteps: the union of the seeds' timesteps
    center: np.ndarray  # (G,) mean over the seeds that cover the grid point
    low: np.ndarray     # (G,) minimum over those seeds
    high: np.ndarray    # (G,) maximum over those seeds
    seeds: np.ndarray   # (G,) how many seeds cover the grid point


def seed_band(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> Band:
    """Mean and min-max band over seeds of (x, y) curves, each interpolated linearly onto the union of their x.

    A seed covers only its own x range (no extrapolation) and its non-finite y values are skipped; grid points no
    seed covers are NaN. The band lies within the data, so it never goes below zero for non-negative data."""
    grid = np.unique(np.concatenate([np.asarray(x, dtype=float) for x, _ in curves]))
    values = np.full((len(curves), len(grid)), np.nan)
    for k, (x, y) in enumerate(curves):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            order = np.argsort(x[ok])
            values[k] = np.interp(grid, x[ok][order], y[ok][order], left=np.nan, right=np.nan)
    covered = np.isfinite(values)
    seeds = covered.sum(axis=0)
    safe = np.where(covered, values, 0.0)
    center = np.where(seeds > 0, safe.sum(axis=0) / np.maximum(seeds, 1), np.nan)
    low = np.where(seeds > 0, np.where(covered, values, np.inf).min(axis=0), np.nan)
    high = np.where(seeds > 0, np.where(covered, values, -np.inf).max(axis=0), np.nan)
    return Band(grid, center, low, high, seeds)


def std_band(mean: np.ndarray, std: np.ndarray, floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) = mean -+ std with low clipped at `floor`: for quantities that cannot go below it (counts)."""
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    return np.maximum(mean - std, floor), mean + std


def architecture_order(summaries: Iterable[dict]) -> list[str]:
    """The sweep's architectures, smallest first: by total hidden neurons, then depth, then name."""
    keys = {s["architecture"]: (s.get("n", 0), s.get("depth", 0), s["architecture"]) for s in summaries}
    return sorted(keys, key=keys.get)


def architecture_colors(summaries: Iterable[dict]) -> dict[str, tuple]:
    """{architecture: RGBA}: architecture_order onto the tab10 palette; every sweep figure uses this one mapping."""
    from matplotlib import colormaps

    palette = colormaps[ARCHITECTURE_PALETTE]
    return {arch: palette(k % palette.N) for k, arch in enumerate(architecture_order(summaries))}


# ----------------------------------------------------------------------------------------------------------------
# What is drawn
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """One history column against timesteps; `spread` names the column of its std (a band mean +- std, floor 0)."""

    column: str
    label: str
    color: str = "black"
    style: str = "-"
    spread: str | None = None


@dataclass(frozen=True)
class Panel:
    """One axes: its title, y label and curves (run figures) or the one column drawn per architecture (sweeps)."""

    title: str
    ylabel: str
    curves: tuple[Curve, ...]
    non_negative: bool = True  # the y axis starts at 0: counts, lengths and densities


@dataclass(frozen=True)
class Layout:
    """The panels of one figure, row-major on a grid of `ncols` columns. With a figure-wide `ylabel` the panels'
    own y labels name their rows (e.g. the policy type)."""

    panels: tuple[Panel, ...]
    ncols: int = 1
    sharey: bool = False
    heading: str = ""
    ylabel: str = ""


# Two lines where one would outgrow a panel's height (1.9 in at 8 pt holds about 30 characters).
DENSITY = "transitions per unit\nlength per neuron"
LENGTH = "trajectory length\n(normalized units)"
REGIONS = "distinct regions"
RETURN = "episode return"
PER_LENGTH = "transitions per\nunit length"


def _policy_types(columns: set[str]) -> list[str]:
    return [p for p in POLICY_TYPES if f"num_regions_{p}_fixed" in columns]


def _present(panels: Iterable[Panel], columns: set[str]) -> tuple[Panel, ...]:
    """The panels with their curves whose columns exist; panels left without a curve are dropped."""
    kept = []
    for panel in panels:
        curves = tuple(c for c in panel.curves if c.column in columns)
        if curves:
            kept.append(Panel(panel.title, panel.ylabel, curves, panel.non_negative))
    return tuple(kept)


def run_layouts(columns: Iterable[str]) -> dict[str, Layout]:
    """{file stem: layout} of one run's figures for these history columns (a figure only when its data exist)."""
    columns = set(columns)
    types = _policy_types(columns)

    def label(p: str, t: str) -> str:
        return f"{t} trajectory" if len(types) == 1 else f"{t} · {p}"

    def both(pattern: str) -> tuple[Curve, ...]:
        return tuple(Curve(pattern.format(p=p, t=t), label(p, t), TRAJ_COLORS[t], POLICY_STYLES[p])
                     for p in types for t in TRAJECTORY_TYPES)

    policy_per_length = tuple(Curve(f"{p}_{t}_transitions_per_length", label(p, t), TRAJ_COLORS[t],
                                    POLICY_STYLES[p]) for p in types for t in TRAJECTORY_TYPES)
    candidates = {
        "normalized_density": Layout((Panel("Normalized region density", DENSITY,
                                            both("{p}_{t}_normalized_density")),)),
        "trajectory_length": Layout((Panel("Trajectory length", LENGTH, both("{p}_{t}_trajectory_length_normalized")),)),
        "region_count": Layout((Panel("Regions along trajectories", REGIONS, both("num_regions_{p}_{t}")),)),
        "eval_return": Layout((Panel("Return", RETURN, (
            Curve("eval_return", "eval return (training)", "black"),
            *(Curve(f"{p}_current_episode_return", label(p, "current"), TRAJ_COLORS["current"],
                    POLICY_STYLES[p]) for p in types)), non_negative=False),)),
        "random_lines": Layout((Panel("Regions along random lines", "regions per line", (
            Curve("mean_num_regions_random_lines_origin", "lines through the origin", LINE_COLORS["origin"],
                  spread="std_num_regions_random_lines_origin"),
            Curve("mean_num_regions_random_lines_mean", "lines through the mean state", LINE_COLORS["mean"],
                  spread="std_num_regions_random_lines_mean"))),)),
        "random_trajectories": Layout((
            Panel("Random-action trajectories", "regions per trajectory", (
                Curve("mean_num_regions_random_trajectories", "random actions", "0.3",
                      spread="std_num_regions_random_trajectories"),)),
            Panel("Density: random vs. policy trajectories", PER_LENGTH, (
                Curve("mean_normalized_num_transitions_random_trajectories", "random actions", "0.3",
                      spread="std_normalized_num_transitions_random_trajectories"), *policy_per_length)))),
    }
    layouts = {}
    for name, layout in candidates.items():
        panels = _present(layout.panels, columns)
        # A figure needs its defining column: the random-trajectory panel alone would just repeat the policies'.
        if panels and panels[0].curves[0].column == layout.panels[0].curves[0].column:
            layouts[name] = Layout(panels, layout.ncols, layout.sharey, layout.heading, layout.ylabel)
    return layouts


def run_figure_names(columns: Iterable[str]) -> list[str]:
    """File stems of the figures plot_run draws for a history with these columns."""
    return list(run_layouts(columns))


def sweep_layouts(columns: Iterable[str]) -> dict[str, Layout]:
    """{file stem: layout} of a sweep's figures against timesteps; each panel's one column is drawn per
    architecture. Quantities of both trajectory types (and both policy types) get a panel each."""
    columns = set(columns)
    types = _policy_types(columns)

    def grid(pattern: str, ylabel: str, trajectories: Sequence[str] = TRAJECTORY_TYPES) -> Layout:
        """Columns: trajectory types (titled on the top row); rows: policy types (naming the row when two)."""
        panels = tuple(Panel(f"{t} trajectory" if p == types[0] else "", p if len(types) > 1 else ylabel,
                             (Curve(pattern.format(p=p, t=t), t),))
                       for p in types for t in trajectories)
        return Layout(panels, ncols=len(trajectories), sharey=True, ylabel=ylabel if len(types) > 1 else "")

    candidates = {
        "sweep_normalized_density": grid("{p}_{t}_normalized_density", DENSITY),
        "sweep_region_count": grid("num_regions_{p}_{t}", REGIONS),
        "sweep_trajectory_length": grid("{p}_{t}_trajectory_length_normalized", LENGTH, ("current",)),
        "sweep_eval_return": Layout((Panel("", RETURN, (Curve("eval_return", "eval"),), non_negative=False),),
                                    heading="Eval return (training)"),
        "sweep_random_lines": Layout((
            Panel("through the origin", "regions per line", (Curve("mean_num_regions_random_lines_origin", ""),)),
            Panel("through the mean state", "regions per line", (Curve("mean_num_regions_random_lines_mean", ""),))),
            ncols=2, sharey=True, heading="Random lines"),
        "sweep_random_trajectories": Layout((
            Panel("", "regions per trajectory", (Curve("mean_num_regions_random_trajectories", ""),)),
            Panel("", PER_LENGTH, (Curve("mean_normalized_num_transitions_random_trajectories", ""),))),
            ncols=2, heading="Random-action trajectories"),
    }
    layouts = {}
    for name, layout in candidates.items():
        if layout.panels and len(_present(layout.panels, columns)) == len(layout.panels):
            layouts[name] = layout
    return layouts


SWEEP_SCATTER = "sweep_regions_vs_neurons"


def sweep_figure_names(columns: Iterable[str]) -> list[str]:
    """File stems of the figures plot_sweep draws for histories with these columns."""
    return [*sweep_layouts(columns), SWEEP_SCATTER]


# ----------------------------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------------------------
def _column(rows: Sequence[dict], key: str) -> np.ndarray:
    return np.asarray([r.get(key) if isinstance(r.get(key), (int, float)) else np.nan for r in rows], dtype=float)


def _figure(layout: Layout, title: str = "") -> tuple[Figure, list]:
    """A column-wide figure with the layout's axes (shared x); the legend goes below them (_finish)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    nrows = -(-len(layout.panels) // layout.ncols)
    heading = title or layout.heading
    fig = Figure(figsize=(COLUMN_WIDTH, nrows * PANEL_HEIGHT + (0.2 if heading else 0.0)), dpi=PNG_DPI,
                 layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, layout.ncols, squeeze=False, sharex=True, sharey=layout.sharey)
    axes = list(grid.flat)
    for ax in axes[len(layout.panels):]:
        ax.remove()  # a grid is only ever short of panels in its last row
    axes = axes[:len(layout.panels)]
    for ax, panel in zip(axes, layout.panels):
        if panel.title:
            ax.set_title(panel.title)
        if not (layout.sharey and ax.get_subplotspec().colspan.start > 0):
            ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.25, linewidth=0.5)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.xaxis.set_tick_params(labelbottom=True)  # sharex hides inner labels; a short last row needs them
    for ax in axes[-layout.ncols:]:
        ax.set_xlabel("timesteps trained")  # per axes: a figure-wide label would collide with the legend below
    if layout.ylabel:
        fig.supylabel(layout.ylabel, fontsize=STYLE["axes.labelsize"])
    if heading:
        fig.suptitle(heading, fontsize=STYLE["axes.titlesize"] + 0.5)
    return fig, axes


def add_legend(fig: Figure, handles: list, max_cols: int = 4, title: str | None = None) -> None:
    """One legend for the whole figure, centred below the axes, with as many columns (up to max_cols) as fit in
    the figure's width; the figure grows by the legend's height, so the axes keep theirs."""
    if not handles:
        return
    renderer = fig.canvas.get_renderer()
    width = fig.get_figwidth() * fig.dpi
    for ncol in range(min(max_cols, len(handles)), 0, -1):
        legend = fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False, title=title,
                            title_fontsize=STYLE["legend.fontsize"], handlelength=2.0, columnspacing=1.0,
                            borderaxespad=0.2)
        extent = legend.get_window_extent(renderer)
        if extent.width <= 0.98 * width or ncol == 1:
            break
        legend.remove()
    fig.set_figheight(fig.get_figheight() + extent.height / fig.dpi)


def _finish(fig: Figure, axes: list, layout: Layout, handles: list, legend_title: str | None = None) -> Figure:
    for ax, panel in zip(axes, layout.panels):
        if panel.non_negative:
            ax.set_ylim(bottom=0)
    add_legend(fig, handles, title=legend_title)
    return fig


def architecture_legend(order: Sequence[str], colors: dict, members: dict) -> tuple[list, str]:
    """(legend handles, legend title) of a sweep: one entry per architecture; the seed count goes into the title
    when every architecture has the same number of seeds, else into each entry."""
    counts = {len(members[a]) for a in order}
    same = len(counts) == 1
    handles = [Line2D([], [], color=colors[a], label=a if same else f"{a} ({len(members[a])} seeds)")
               for a in order]
    if same:
        count = counts.pop()
        return handles, f"mean and min–max over {count} seed{'s' if count != 1 else ''}"
    return handles, "mean and min–max over seeds"


def run_figures(rows: Sequence[dict], *, columns: Iterable[str] | None = None, title: str = "") -> dict[str, Figure]:
    """{file stem: figure} of one run's history against timesteps trained (see run_layouts for which figures)."""
    import matplotlib as mpl

    columns = set(columns) if columns is not None else {k for r in rows for k in r}
    x = _column(rows, "timesteps")
    figures = {}
    with mpl.rc_context(STYLE):
        for name, layout in run_layouts(columns).items():
            fig, axes = _figure(layout, title=title)
            handles: dict[str, object] = {}
            for ax, panel in zip(axes, layout.panels):
                for curve in panel.curves:
                    y = _column(rows, curve.column)
                    label = curve.label if curve.spread is None else f"{curve.label} (mean ± std)"
                    (line,) = ax.plot(x, y, curve.style, color=curve.color, marker="o", markersize=2.2, label=label)
                    if curve.spread is not None:
                        low, high = std_band(y, _column(rows, curve.spread))
                        ax.fill_between(x, low, high, color=curve.color, alpha=BAND_ALPHA, linewidth=0)
                    handles.setdefault(label, line)
            figures[name] = _finish(fig, axes, layout, list(handles.values()))
    return figures


def sweep_figures(summaries: Sequence[dict], histories: dict[str, list[dict]]) -> dict[str, Figure]:
    """{file stem: figure} of a sweep: per architecture the mean over its seeds with a min-max band, against
    timesteps, and the best checkpoint's region count against the number of neurons."""
    import matplotlib as mpl

    order = architecture_order(summaries)
    colors = architecture_colors(summaries)
    members = {a: [s for s in summaries if s["architecture"] == a] for a in order}
    columns = {k for rows in histories.values() for r in rows for k in r}
    handles, legend_title = architecture_legend(order, colors, members)
    figures = {}
    with mpl.rc_context(STYLE):
        for name, layout in sweep_layouts(columns).items():
            fig, axes = _figure(layout)
            for ax, panel in zip(axes, layout.panels):
                column = panel.curves[0].column
                for arch in order:
                    curves = [(_column(histories.get(s["run_id"], []), "timesteps"),
                               _column(histories.get(s["run_id"], []), column)) for s in members[arch]]
                    curves = [c for c in curves if len(c[0])]
                    if not curves:
                        continue
                    band = seed_band(curves)
                    ax.plot(band.grid, band.center, color=colors[arch], label=arch)
                    ax.fill_between(band.grid, band.low, band.high, color=colors[arch], alpha=BAND_ALPHA, linewidth=0)
            figures[name] = _finish(fig, axes, layout, handles, legend_title)
        figures[SWEEP_SCATTER] = _regions_vs_neurons(summaries, order, colors, members)
    return figures


DEPTH_MARKERS = {1: "o", 2: "D", 3: "s", 4: "^"}  # so architectures of equal neuron count differ in shape too


def _regions_vs_neurons(summaries, order, colors, members) -> Figure:
    """Regions on the fixed trajectory at the best checkpoint against hidden neurons: each seed a small dot, the
    mean a large marker shaped by depth. Hanin & Rolnick predict roughly linear growth in n, independent of depth.
    Architectures with the same n are set slightly apart along x so that neither hides the other."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(COLUMN_WIDTH, PANEL_HEIGHT + 0.2), dpi=PNG_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    neurons = {a: float(members[a][0].get("n", np.nan)) for a in order}
    span = max([v for v in neurons.values() if np.isfinite(v)], default=1.0)
    handles = []
    for arch in order:
        same_n = [a for a in order if neurons[a] == neurons[arch]]
        dodge = 0.025 * span * (same_n.index(arch) - (len(same_n) - 1) / 2)
        depth = members[arch][0].get("depth")
        marker = DEPTH_MARKERS.get(depth, "P")
        n = np.asarray([s["n"] for s in members[arch]], dtype=float) + dodge
        y = np.asarray([s.get("best_num_regions_deterministic_fixed", np.nan) for s in members[arch]], dtype=float)
        ax.scatter(n, y, s=8, color=colors[arch], alpha=0.6, linewidths=0, label=arch)
        if np.isfinite(y).any():
            ax.scatter([n.mean()], [np.nanmean(y)], s=30, color=colors[arch], edgecolors="black", linewidths=0.5,
                       marker=marker, label=arch, zorder=3)
        handles.append(Line2D([], [], color=colors[arch], marker=marker, linestyle="none", markersize=5,
                              markeredgecolor="black", markeredgewidth=0.5, label=f"{arch} (depth {depth})"))
    ax.set(xlabel="hidden neurons n", ylabel="regions on fixed trajectory")
    ax.set_title("Best checkpoint vs. network size")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.25, linewidth=0.5)
    add_legend(fig, handles, title="mean (large) and each seed (small)")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------
def write_figures(figures: dict[str, Figure], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Each figure as <out_dir>/<stem>.<fmt>, written atomically where its bytes changed (figure bytes are
    deterministic, so an unchanged figure keeps its file and time); returns the paths in the dict's order."""
    import matplotlib as mpl

    paths = []
    for stem, fig in figures.items():
        path = Path(out_dir) / f"{stem}.{fmt}"
        with mpl.rc_context(STYLE):
            data = figure_bytes(fig, fmt, producer="deep_rl_regions evaluate.py", dpi=PNG_DPI)
        write_bytes_if_changed(path, data)
        paths.append(path)
    return paths


def plot_run(rows: Sequence[dict], out_dir: Path, *, columns: Iterable[str] | None = None, title: str = "",
             fmt: str = "png") -> list[Path]:
    """One run's figures (run_figure_names) as <out_dir>/<name>.<fmt>; nothing for an empty history."""
    if not rows:
        return []
    return write_figures(run_figures(rows, columns=columns, title=title), out_dir, fmt)


def plot_sweep(summaries: Sequence[dict], histories: dict[str, list[dict]], out_dir: Path, *,
               fmt: str = "png") -> list[Path]:
    """A sweep's figures by architecture (sweep_figure_names) as <out_dir>/<name>.<fmt>."""
    if not summaries:
        return []
    return write_figures(sweep_figures(summaries, histories), out_dir, fmt)
