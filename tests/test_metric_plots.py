"""evaluate.py's figures (utils/pictures/metric_plots.py) on fabricated histories: bands that stay within the data,
one colour per architecture in every sweep figure, one legend entry per architecture, figures for the random data
and the stochastic policy, and valid png / pdf / svg files."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from utils.analysis.checkpoint_metrics import expected_columns
from utils.analysis.history import final_values
from utils.pictures.metric_plots import (architecture_colors, plot_run, plot_sweep, run_figure_names, run_figures,
                                         seed_band, std_band, sweep_figure_names, sweep_figures)

ARCHITECTURES = {"c64,64": [64, 64], "c16,16": [16, 16], "c64": [64], "c32,32": [32, 32]}  # not in size order
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


def _history(columns, n: int, seed: int, checkpoints: int = 4) -> list[dict]:
    """Rows of a made-up run: every column non-negative and growing with n, eval_return negative at first."""
    rng = np.random.default_rng(seed)
    rows = []
    for it in range(checkpoints):
        row = {c: float(n * (1 + it) * rng.uniform(0.5, 1.5)) for c in columns}
        row.update(iteration=it, timesteps=1000 * it, eval_return=-100.0 + 150 * it + rng.normal())
        rows.append(row)
    return rows


def _sweep(columns, seeds: int = 3):
    summaries, histories = [], {}
    for arch, dims in ARCHITECTURES.items():
        for seed in range(seeds):
            run_id = f"{arch}-{seed}"
            histories[run_id] = _history(columns, sum(dims), seed)
            summaries.append({"run_id": run_id, "architecture": arch, "depth": len(dims), "n": sum(dims),
                              "best_num_regions_deterministic_fixed": float(sum(dims) + seed)})
    return summaries, histories


ALL_COLUMNS = expected_columns(("deterministic", "stochastic"), random_trajectories=True, random_lines=True)
PLAIN_COLUMNS = expected_columns(("deterministic",), random_trajectories=False, random_lines=False)


# ----------------------------------------------------------------------------------------------------------------
# Bands
# ----------------------------------------------------------------------------------------------------------------
def test_seed_band_spans_min_to_max_and_never_goes_below_zero_where_mean_minus_std_would():
    x = np.array([0.0, 10.0, 20.0])
    seeds = [(x, np.array([0.0, 0.0, 1.0])), (x, np.array([0.0, 0.0, 2.0])), (x, np.array([9.0, 0.5, 3.0]))]
    band = seed_band(seeds)
    values = np.array([y for _, y in seeds])
    assert np.any(values.mean(0) - values.std(0) < 0)  # the data a mean +- std band would push below zero
    np.testing.assert_array_equal(band.grid, x)
    np.testing.assert_allclose(band.center, values.mean(0))
    np.testing.assert_array_equal(band.low, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(band.high, [9.0, 0.5, 3.0])
    assert np.all(band.low >= 0) and np.all(band.low <= band.center) and np.all(band.center <= band.high)


def test_seed_band_interpolates_within_each_seed_and_never_extrapolates():
    band = seed_band([(np.array([0.0, 10.0]), np.array([0.0, 10.0])),
                      (np.array([0.0, 5.0, 20.0]), np.array([4.0, np.nan, 8.0]))])  # a NaN value is skipped
    np.testing.assert_array_equal(band.grid, [0.0, 5.0, 10.0, 20.0])
    np.testing.assert_array_equal(band.seeds, [2, 2, 2, 1])  # the first seed ends at 10
    np.testing.assert_allclose(band.center, [2.0, 5.0, 8.0, 8.0])  # seed 2 at 5 and 10: 5.0 and 6.0
    np.testing.assert_allclose(band.low, [0.0, 5.0, 6.0, 8.0])
    np.testing.assert_allclose(band.high, [4.0, 5.0, 10.0, 8.0])


def test_std_band_is_mean_plus_minus_std_with_the_lower_edge_clipped_at_zero():
    low, high = std_band(np.array([1.0, 5.0, 0.0]), np.array([3.0, 1.0, 0.0]))
    np.testing.assert_array_equal(low, [0.0, 4.0, 0.0])
    np.testing.assert_array_equal(high, [4.0, 6.0, 0.0])


# ----------------------------------------------------------------------------------------------------------------
# Which figures, colours, legends
# ----------------------------------------------------------------------------------------------------------------
def test_random_data_and_stochastic_columns_get_their_own_figures_and_curves():
    plain = run_figure_names(PLAIN_COLUMNS)
    assert plain == ["normalized_density", "trajectory_length", "region_count", "eval_return"]
    assert run_figure_names(ALL_COLUMNS) == [*plain, "random_lines", "random_trajectories"]
    assert sweep_figure_names(ALL_COLUMNS) == [
        "sweep_normalized_density", "sweep_region_count", "sweep_trajectory_length", "sweep_eval_return",
        "sweep_random_lines", "sweep_random_trajectories", "sweep_regions_vs_neurons"]
    assert "sweep_random_lines" not in sweep_figure_names(PLAIN_COLUMNS)
    assert sweep_figure_names(["iteration", "timesteps", "eval_return"]) == ["sweep_eval_return", "sweep_regions_vs_neurons"]

    figures = run_figures(_history(ALL_COLUMNS, 16, 0), columns=ALL_COLUMNS)
    (density,) = figures["normalized_density"].axes
    assert {line.get_label() for line in density.lines} == {
        "fixed · deterministic", "current · deterministic", "fixed · stochastic", "current · stochastic"}
    lines_axes = figures["random_lines"].axes[0]
    assert [line.get_label() for line in lines_axes.lines] == [
        "lines through the origin (mean ± std)", "lines through the mean state (mean ± std)"]
    assert len(lines_axes.collections) == 2  # one band each
    assert len(figures["random_trajectories"].axes) == 2


def test_every_sweep_figure_gives_each_architecture_one_colour_and_one_legend_entry():
    summaries, histories = _sweep(ALL_COLUMNS)
    colors = architecture_colors(summaries)
    assert list(colors) == ["c16,16", "c64", "c32,32", "c64,64"]  # by neurons, then depth
    assert len({tuple(c) for c in colors.values()}) == 4
    figures = sweep_figures(summaries, histories)
    assert list(figures) == sweep_figure_names(ALL_COLUMNS)
    assert len(figures["sweep_normalized_density"].axes) == 4  # fixed | current x deterministic | stochastic
    for name, fig in figures.items():
        (legend,) = fig.legends
        assert [t.get_text().split(" ")[0] for t in legend.get_texts()] == list(colors), name
        drawn = 0
        for ax in fig.axes:
            for line in ax.lines:
                assert to_rgba(line.get_color()) == colors[line.get_label()], (name, line.get_label())
                drawn += 1
            for points in ax.collections:
                if points.get_label() in colors:  # scatter; fill_between bands carry no architecture label
                    assert tuple(points.get_facecolor()[0][:3]) == colors[points.get_label()][:3], name
                    drawn += 1
        assert drawn >= 4, name  # every architecture drawn at least once
    assert "3 seeds" in figures["sweep_eval_return"].legends[0].get_title().get_text()


def test_legends_sit_below_the_axes_inside_the_figure():
    summaries, histories = _sweep(ALL_COLUMNS)
    figures = {**sweep_figures(summaries, histories), **run_figures(_history(ALL_COLUMNS, 16, 0))}
    for name, fig in figures.items():
        renderer = fig.canvas.get_renderer()
        fig.draw(renderer)
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        width, height = fig.bbox.width, fig.bbox.height
        assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0, name  # not cut off by the figure's edge
        lowest_axes = min(ax.get_window_extent(renderer).y0 for ax in fig.axes)
        assert box.y1 <= lowest_axes + 1, name  # below every axes: it covers no data
        assert fig.get_figwidth() == pytest.approx(3.4), name  # one column


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["png", pytest.param("pdf", marks=pytest.mark.slow), "svg"])  # pdf embeds fonts: ~2 s
def test_each_format_writes_valid_files_named_by_figure(tmp_path, fmt):
    rows = _history(PLAIN_COLUMNS, 8, 0)
    paths = plot_run(rows, tmp_path, columns=PLAIN_COLUMNS, fmt=fmt)
    assert [p.name for p in paths] == [f"{name}.{fmt}" for name in run_figure_names(PLAIN_COLUMNS)]
    for path in paths:
        data = path.read_bytes()
        if fmt == "svg":
            assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
        else:
            assert data.startswith(MAGIC[fmt])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary files left
    again = plot_run(rows, tmp_path / "again", columns=PLAIN_COLUMNS, fmt=fmt)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]  # no dates or random ids inside


def test_sweep_files_follow_the_format(tmp_path):
    summaries, histories = _sweep(PLAIN_COLUMNS, seeds=1)
    paths = plot_sweep(summaries, histories, tmp_path, fmt="svg")
    assert [p.name for p in paths] == [f"{n}.svg" for n in sweep_figure_names(PLAIN_COLUMNS)]
    assert plot_sweep([], {}, tmp_path / "none") == []


def test_final_values_are_the_last_checkpoint_with_a_training_return():
    rows = [{"iteration": 0, "timesteps": 0, "eval_return": -5.0}, {"iteration": 2, "timesteps": 20, "eval_return": 7.5},
            {"iteration": 4, "timesteps": 40, "eval_return": None}]
    assert final_values(rows) == {"final_iteration": 2, "final_timesteps": 20, "final_eval_return": 7.5}
    assert final_values(rows[2:]) == {"final_iteration": None, "final_timesteps": None, "final_eval_return": None}
