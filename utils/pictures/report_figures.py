"""The reproduction report's figures (reproduce.py), in metric_plots' style: one column wide, legend below, the
same colour per architecture as in every sweep figure (metric_plots.architecture_colors), mean over seeds with a
min-max band (metric_plots.seed_band, never below zero for non-negative data).

Figures of one env's runs (summaries + history rows as evaluate.py writes them):
- report_density: normalized density against timesteps, one panel per architecture, fixed vs current trajectory;
- report_trajectory_length: the current trajectory's length against timesteps, log y, one curve per architecture;
- report_density_vs_size: the last checkpoint's fixed-trajectory density against width and against depth;
- report_random_trajectories: transitions per unit length at the last checkpoint, random-action vs policy
  trajectories; report_random_lines: regions per random line against timesteps (each only when the runs were
  evaluated with them).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from utils.pictures.metric_plots import (BAND_ALPHA, COLUMN_WIDTH, DENSITY, LENGTH, PANEL_HEIGHT, PER_LENGTH, PNG_DPI,
                                         STYLE, TRAJ_COLORS, add_legend, architecture_colors, architecture_order,
                                         seed_band)

POLICY = "deterministic"
RANDOM_PER_LENGTH = "mean_normalized_num_transitions_random_trajectories"
LINE_COLUMNS = {"origin": "mean_num_regions_random_lines_origin", "mean": "mean_num_regions_random_lines_mean"}


def _column(rows: Sequence[dict], key: str) -> np.ndarray:
    return np.asarray([r.get(key) if isinstance(r.get(key), (int, float)) else np.nan for r in rows], dtype=float)


def _new_figure(nrows: int, ncols: int, *, sharex: bool = True) -> tuple[Figure, list]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(COLUMN_WIDTH, nrows * PANEL_HEIGHT), dpi=PNG_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(nrows, ncols, squeeze=False, sharex=sharex).flat)
    for ax in axes:
        ax.grid(alpha=0.25, linewidth=0.5)
    return fig, axes


def _band(ax, runs: Sequence[tuple[dict, list[dict]]], column: str, color, label: str, style: str = "-") -> bool:
    curves = [(_column(rows, "timesteps"), _column(rows, column)) for _, rows in runs if rows]
    curves = [c for c in curves if np.isfinite(c[1]).any()]
    if not curves:
        return False
    band = seed_band(curves)
    ax.plot(band.grid, band.center, style, color=color, label=label)
    ax.fill_between(band.grid, band.low, band.high, color=color, alpha=BAND_ALPHA, linewidth=0)
    return True


def _members(summaries: Sequence[dict], histories: dict[str, list[dict]]) -> dict[str, list[tuple[dict, list]]]:
    order = architecture_order(summaries)
    return {a: [(s, histories.get(s["run_id"], [])) for s in summaries if s["architecture"] == a] for a in order}


def density_figure(summaries: Sequence[dict], histories: dict[str, list[dict]]) -> Figure:
    """Normalized density against timesteps: a panel per architecture, the fixed and the current trajectory."""
    import matplotlib as mpl

    members = _members(summaries, histories)
    with mpl.rc_context(STYLE):
        ncols = 2 if len(members) > 1 else 1
        fig, axes = _new_figure(-(-len(members) // ncols), ncols)
        for ax in axes[len(members):]:
            ax.remove()
        for ax, (arch, runs) in zip(axes, members.items()):
            for t in ("fixed", "current"):
                _band(ax, runs, f"{POLICY}_{t}_normalized_density", TRAJ_COLORS[t], f"{t} trajectory")
            ax.set_title(f"{arch} ({len(runs)} seed{'s' if len(runs) != 1 else ''})")
            ax.set_ylim(bottom=0)
            ax.set_ylabel(DENSITY)
            ax.set_xlabel("timesteps trained")
        handles = [Line2D([], [], color=TRAJ_COLORS[t], label=f"{t} trajectory (mean, min–max over seeds)")
                   for t in ("fixed", "current")]
        add_legend(fig, handles, max_cols=1)
    return fig


def _architecture_handles(summaries: Sequence[dict], colors: dict) -> list:
    return [Line2D([], [], color=colors[a], label=a) for a in architecture_order(summaries)]


def trajectory_length_figure(summaries: Sequence[dict], histories: dict[str, list[dict]]) -> Figure:
    """The current trajectory's length (normalized input space) against timesteps, log scale, per architecture."""
    import matplotlib as mpl

    colors = architecture_colors(summaries)
    with mpl.rc_context(STYLE):
        fig, (ax,) = _new_figure(1, 1)
        for arch, runs in _members(summaries, histories).items():
            _band(ax, runs, f"{POLICY}_current_trajectory_length_normalized", colors[arch], arch)
        ax.set_yscale("log")
        ax.set(xlabel="timesteps trained", ylabel=LENGTH, title="Current trajectory length")
        add_legend(fig, _architecture_handles(summaries, colors), title="mean and min–max over seeds")
    return fig


def density_vs_size_figure(summaries: Sequence[dict], histories: dict[str, list[dict]]) -> Figure:
    """The last checkpoint's fixed-trajectory normalized density against the widest layer and against depth:
    each seed a small dot, the architecture's mean a large marker."""
    import matplotlib as mpl

    colors = architecture_colors(summaries)
    with mpl.rc_context(STYLE):
        fig, axes = _new_figure(1, 2, sharex=False)
        for arch, runs in _members(summaries, histories).items():
            ends = np.asarray([_column(rows, f"{POLICY}_fixed_normalized_density")[-1] if rows else np.nan
                               for _, rows in runs])
            for ax, key in zip(axes, ("width", "depth")):
                x = np.asarray([s[key] for s, _ in runs], dtype=float)
                ax.scatter(x, ends, s=8, color=colors[arch], alpha=0.6, linewidths=0)
                if np.isfinite(ends).any():
                    ax.scatter([x[0]], [np.nanmean(ends)], s=30, color=colors[arch], edgecolors="black",
                               linewidths=0.5, zorder=3)
        for ax, key in zip(axes, ("widest layer", "hidden layers")):
            ax.set_xlabel(key)
            ax.set_ylim(bottom=0)
        axes[1].xaxis.get_major_locator().set_params(integer=True)
        axes[0].set_ylabel(DENSITY)
        fig.suptitle("Density at the last checkpoint (fixed trajectory)", fontsize=STYLE["axes.titlesize"] + 0.5)
        add_legend(fig, _architecture_handles(summaries, colors), title="mean (large) and each seed (small)")
    return fig


def random_trajectories_figure(summaries: Sequence[dict], histories: dict[str, list[dict]]) -> Figure | None:
    """Transitions per unit length at the last checkpoint, per architecture: random-action trajectories against the
    policy's fixed and current ones (each seed a dot, the mean a short bar). None without random trajectories.
    Colours here mean trajectory kinds (as in the run figures), so architectures are named on the x axis."""
    import matplotlib as mpl

    if RANDOM_PER_LENGTH not in {k for rows in histories.values() for r in rows for k in r}:
        return None
    members = _members(summaries, histories)
    kinds = {"random actions": ("0.3", RANDOM_PER_LENGTH),
             "fixed trajectory": (TRAJ_COLORS["fixed"], f"{POLICY}_fixed_transitions_per_length"),
             "current trajectory": (TRAJ_COLORS["current"], f"{POLICY}_current_transitions_per_length")}
    with mpl.rc_context(STYLE):
        fig, (ax,) = _new_figure(1, 1, sharex=False)
        for i, (arch, runs) in enumerate(members.items()):
            for j, (color, column) in enumerate(kinds.values()):
                ends = np.asarray([_column(rows, column)[-1] if rows else np.nan for _, rows in runs])
                x = i + (j - 1) * 0.25
                ax.scatter(np.full(len(ends), x), ends, s=8, color=color, alpha=0.7, linewidths=0)
                if np.isfinite(ends).any():
                    ax.hlines(np.nanmean(ends), x - 0.1, x + 0.1, color=color, linewidth=1.5)
        ax.set_xticks(range(len(members)), list(members))
        ax.set(ylabel=PER_LENGTH, title="Last checkpoint: random vs. policy")
        ax.set_ylim(bottom=0)
        handles = [Line2D([], [], color=c, marker="o", linestyle="none", markersize=3, label=k)
                   for k, (c, _) in kinds.items()]
        add_legend(fig, handles, title="each seed (dot) and mean (bar)")
    return fig


def random_lines_figure(summaries: Sequence[dict], histories: dict[str, list[dict]]) -> Figure | None:
    """Regions per random line (through the origin; through the mean state) against timesteps, per architecture.
    None without random lines."""
    import matplotlib as mpl

    if LINE_COLUMNS["origin"] not in {k for rows in histories.values() for r in rows for k in r}:
        return None
    colors = architecture_colors(summaries)
    with mpl.rc_context(STYLE):
        fig, axes = _new_figure(1, 2)
        for ax, (anchor, column) in zip(axes, LINE_COLUMNS.items()):
            for arch, runs in _members(summaries, histories).items():
                _band(ax, runs, column, colors[arch], arch)
            ax.set(xlabel="timesteps trained", title=f"through the {'origin' if anchor == 'origin' else 'mean state'}")
            ax.set_ylim(bottom=0)
        axes[0].set_ylabel("regions per line")
        fig.suptitle("Random lines", fontsize=STYLE["axes.titlesize"] + 0.5)
        add_legend(fig, _architecture_handles(summaries, colors), title="mean and min–max over seeds")
    return fig


def report_figures(summaries: Sequence[dict], histories: dict[str, list[dict]]) -> dict[str, Figure]:
    """{file stem: figure} of one env's runs, in the report's order (finding 1 and 3, 2, 4, 5)."""
    figures = {"report_density": density_figure(summaries, histories),
               "report_trajectory_length": trajectory_length_figure(summaries, histories),
               "report_density_vs_size": density_vs_size_figure(summaries, histories)}
    for stem, draw in (("report_random_trajectories", random_trajectories_figure),
                       ("report_random_lines", random_lines_figure)):
        figure = draw(summaries, histories)
        if figure is not None:
            figures[stem] = figure
    return figures
