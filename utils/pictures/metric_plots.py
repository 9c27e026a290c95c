"""Paper-style figures of the evaluation (matplotlib, Agg backend, PNG): per run, and per sweep by architecture.

Colours: fixed trajectories blue, current orange; in sweep figures one colour per architecture (tab10, in order
of neuron count). Sweep curves are the mean over the seeds (runs) of an architecture with a +-1 std band,
interpolated onto the union of the runs' timesteps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from utils.runs.io import write_bytes_atomic

TRAJ_COLORS = {"fixed": "tab:blue", "current": "tab:orange"}
POLICY_STYLES = {"deterministic": "-", "stochastic": "--"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    import io
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    _pyplot().close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return path


def _column(rows: Sequence[dict], key: str) -> np.ndarray:
    return np.asarray([r.get(key) if isinstance(r.get(key), (int, float)) else np.nan for r in rows], dtype=float)


def plot_run(rows: Sequence[dict], out_dir: Path, *, title: str = "",
             policy_types: Sequence[str] = ("deterministic",)) -> list[Path]:
    """Four PNGs against timesteps trained: normalized density, trajectory length, region counts, eval return."""
    if not rows:
        return []
    plt = _pyplot()
    x = _column(rows, "timesteps")
    out_dir = Path(out_dir)
    panels = [
        ("normalized_density", "{p}_{t}_normalized_density", "transitions / (length x neurons)",
         "Normalized region density along trajectories"),
        ("trajectory_length", "{p}_{t}_trajectory_length_normalized", "length in input space (normalized units)",
         "Trajectory length"),
        ("region_count", "num_regions_{p}_{t}", "distinct regions visited", "Linear regions along trajectories"),
    ]
    files = []
    for name, pattern, ylabel, heading in panels:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for p in policy_types:
            for t in ("fixed", "current"):
                ax.plot(x, _column(rows, pattern.format(p=p, t=t)), POLICY_STYLES[p], color=TRAJ_COLORS[t],
                        marker="o", markersize=3, label=f"{t} trajectory ({p})")
        ax.set(xlabel="timesteps trained", ylabel=ylabel, title=f"{heading}\n{title}")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
        files.append(_save(fig, out_dir / f"{name}.png"))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    y = _column(rows, "eval_return")
    if np.isfinite(y).any():
        ax.plot(x, y, color="black", marker="o", markersize=3, label="eval return (training, mean of episodes)")
    for p in policy_types:
        ax.plot(x, _column(rows, f"{p}_current_episode_return"), POLICY_STYLES[p], color=TRAJ_COLORS["current"],
                label=f"current trajectory return ({p})")
    ax.set(xlabel="timesteps trained", ylabel="episode return", title=f"Return\n{title}")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    files.append(_save(fig, out_dir / "eval_return.png"))
    return files


def _mean_std(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    ys = []
    for x, y in curves:
        ok = np.isfinite(y)
        ys.append(np.interp(grid, x[ok], y[ok], left=np.nan, right=np.nan) if ok.sum() > 0 else np.full_like(grid, np.nan))
    ys = np.asarray(ys)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return grid, np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)


def plot_sweep(summaries: Sequence[dict], histories: dict[str, list[dict]], out_dir: Path) -> list[Path]:
    """Sweep figures grouped by architecture (mean +- std over seeds) against timesteps, and counts against neurons."""
    plt = _pyplot()
    archs: dict[str, list[dict]] = {}
    for s in sorted(summaries, key=lambda s: (s["n"], s["depth"], s["architecture"])):
        archs.setdefault(s["architecture"], []).append(s)
    colors = {a: plt.get_cmap("tab10")(i % 10) for i, a in enumerate(archs)}
    out_dir = Path(out_dir)
    figures = [
        ("sweep_normalized_density", [("deterministic_fixed_normalized_density", "-", "fixed"),
                                      ("deterministic_current_normalized_density", "--", "current")],
         "transitions / (length x neurons)", "Normalized region density (deterministic policy)"),
        ("sweep_region_count", [("num_regions_deterministic_fixed", "-", "fixed"),
                                ("num_regions_deterministic_current", "--", "current")],
         "distinct regions visited", "Linear regions along trajectories"),
        ("sweep_trajectory_length", [("deterministic_current_trajectory_length_normalized", "-", "current")],
         "length in input space (normalized units)", "Current trajectory length"),
        ("sweep_eval_return", [("eval_return", "-", "eval")], "episode return", "Eval return"),
    ]
    files = []
    for name, series, ylabel, heading in figures:
        fig, ax = plt.subplots(figsize=(6, 4))
        for arch, members in archs.items():
            for key, style, label in series:
                curves = [(_column(histories.get(s["run_id"], []), "timesteps"),
                           _column(histories.get(s["run_id"], []), key)) for s in members]
                curves = [c for c in curves if len(c[0])]
                if not curves:
                    continue
                grid, mean, std = _mean_std(curves)
                ax.plot(grid, mean, style, color=colors[arch], label=f"{arch} {label} (n={len(curves)} seeds)")
                ax.fill_between(grid, mean - std, mean + std, color=colors[arch], alpha=0.2, linewidth=0)
        ax.set(xlabel="timesteps trained", ylabel=ylabel, title=heading)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
        files.append(_save(fig, out_dir / f"{name}.png"))
    # Counts against the number of neurons at the best checkpoint: Hanin & Rolnick's prediction is ~linear in n.
    fig, ax = plt.subplots(figsize=(6, 4))
    for arch, members in archs.items():
        n = np.asarray([s["n"] for s in members], dtype=float)
        y = np.asarray([s.get("best_num_regions_deterministic_fixed", np.nan) for s in members], dtype=float)
        ax.errorbar(n.mean(), np.nanmean(y) if np.isfinite(y).any() else np.nan,
                    yerr=np.nanstd(y) if np.isfinite(y).any() else 0, fmt="o", color=colors[arch], capsize=3,
                    label=f"{arch} (depth {members[0]['depth']})")
    ax.set(xlabel="hidden neurons n", ylabel="distinct regions on fixed trajectory",
           title="Regions at the best checkpoint vs. network size")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7)
    files.append(_save(fig, out_dir / "sweep_regions_vs_neurons.png"))
    return files
