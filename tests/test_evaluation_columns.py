"""Every column evaluate.py writes, recomputed here from first principles on a tiny Car1D run (fast, in process).

history.csv: iteration and timesteps from the checkpoint, eval_return from metrics.jsonl, the current episode's
return from its rewards, counts from the independent reference implementation on the cached raw states, lengths
and densities with numpy, random-trajectory and random-line statistics likewise. summary.json: the architecture
from the weights' shapes and every best_* value recomputed on best.pt the same way.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import evaluate as evaluate_cli
import randomized_metric_helper
from models.checkpoint import load_checkpoint
from tests.helpers import TINY_CAR1D, train_run
from tests.reference_regions import line_pieces_ref, path_pieces_ref
from utils.analysis.history import read_history
from utils.runs.io import load_npz, read_jsonl

TYPES = ("deterministic", "stochastic")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A 3-checkpoint Car1D run (c6,5), its random data, and its evaluation with every optional metric."""
    root = tmp_path_factory.mktemp("columns")
    store, data, results = root / "store", root / "random", root / "results"
    train_run(store, "r", *TINY_CAR1D, "--policy_dims=c6,5", "--seed=4")
    assert randomized_metric_helper.main(["--run_id=r", f"--checkpoints_dir={store}", f"--save_dir={data}",
                                          "--num_random_lines=7", "--num_random_trajectories=3"]) == 0
    assert evaluate_cli.main(["--run_id=r", f"--checkpoints_dir={store}", f"--results_dir={results}", "--quiet",
                              "--no_plots", "--add_stochastic", "--evaluate_random_trajectories",
                              "--evaluate_random_lines", f"--randomized_data_dir={data}", "--wandb_mode=disabled"]) == 0
    return store / "r", data / "r", results / "r" / "r"


def _layers(policy):
    return [(W.numpy(), b.numpy()) for W, b in policy.hidden_layers]


def _length(points: np.ndarray) -> float:
    return float(sum(np.linalg.norm(points[i + 1] - points[i]) for i in range(len(points) - 1)))


def expected_metrics(policy, run: Path, data: Path, key: str) -> dict:
    """Every metric column of one checkpoint (key '000002' or 'best'), from first principles."""
    layers, n = _layers(policy), sum(W.shape[0] for W, _ in _layers(policy))
    out = {}
    for p in TYPES:
        current = load_npz(run / "trajectories" / f"{key}_{p}_seed0.npz")
        out[f"{p}_current_episode_return"] = float(np.sum(current["rewards"]))
        fixed = load_npz(run / "trajectories" / f"best_{p}_seed0.npz")["states"]
        for t, states in (("fixed", fixed), ("current", current["states"])):
            x = policy.normalize(states)
            ref = path_pieces_ref(layers, x)
            length_x = _length(x)
            out[f"num_transitions_{p}_{t}"] = ref["num_transitions"]
            out[f"num_regions_{p}_{t}"] = ref["num_regions"]
            out[f"{p}_{t}_trajectory_timesteps"] = len(states)
            out[f"{p}_{t}_trajectory_length"] = _length(states)
            out[f"{p}_{t}_trajectory_length_normalized"] = length_x
            out[f"{p}_{t}_normalized_density"] = ref["num_transitions"] / (length_x * n)
            out[f"{p}_{t}_transitions_per_length"] = ref["num_transitions"] / length_x
    trajectories = load_npz(data / "Car1DEnv-v1_random_trajectories.npz")
    per = {"num_regions": [], "num_transitions": [], "normalized_num_regions": [], "normalized_num_transitions": [],
           "trajectory_length": []}
    for states in np.split(trajectories["states"], np.cumsum(trajectories["lengths"])[:-1]):
        x = policy.normalize(states)
        ref, length_x = path_pieces_ref(layers, x), _length(x)
        per["num_regions"].append(ref["num_regions"])
        per["num_transitions"].append(ref["num_transitions"])
        per["normalized_num_regions"].append(ref["num_regions"] / length_x)
        per["normalized_num_transitions"].append(ref["num_transitions"] / length_x)
        per["trajectory_length"].append(length_x)
    for q, values in per.items():
        out[f"mean_{q}_random_trajectories"] = sum(values) / len(values)
        out[f"std_{q}_random_trajectories"] = float(np.sqrt(np.mean((np.array(values) - np.mean(values)) ** 2)))
    x = policy.normalize(load_npz(data / "Car1DEnv-v1_random_lines.npz")["points"])
    for name, anchor in (("origin", np.zeros(x.shape[1])), ("mean", x.mean(axis=0))):
        keep = [i for i in range(len(x)) if np.any(x[i] != anchor)]
        counts = np.array(line_pieces_ref(layers, x[keep], x[keep] - anchor)["num_regions_per_line"], dtype=float)
        out[f"mean_num_regions_random_lines_{name}"] = counts.mean()
        out[f"std_num_regions_random_lines_{name}"] = counts.std()
    return out


def assert_same(actual: dict, expected: dict) -> None:
    for column, value in expected.items():
        assert actual[column] == pytest.approx(value, rel=1e-9, abs=1e-12), column


def test_every_history_column_by_hand(evaluated):
    run, data, out = evaluated
    rows = read_history(out / "history.csv")
    eval_returns = {r["iteration"]: r.get("eval_return") for r in read_jsonl(run / "metrics.jsonl")}
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    for row in rows:
        policy = load_checkpoint(run / "checkpoints" / f"{row['iteration']:06d}.pt")
        expected = {"iteration": policy.iteration, "timesteps": policy.timesteps,
                    "eval_return": eval_returns[row["iteration"]],
                    **expected_metrics(policy, run, data, f"{row['iteration']:06d}")}
        assert set(row) == set(expected)
        assert_same(row, expected)


def test_every_summary_value_by_hand(evaluated):
    run, data, out = evaluated
    summary = json.loads((out / "summary.json").read_text())
    best = load_checkpoint(run / "best.pt")
    widths = [W.shape[0] for W, _ in _layers(best)]
    assert (summary["depth"], summary["width"], summary["n"]) == (2, 6, 11) == (len(widths), max(widths), sum(widths))
    assert summary["n_params"] == (2 * 6 + 6) + (6 * 5 + 5) + (5 * 1 + 1)  # head included, log-std not
    assert (summary["best_iteration"], summary["best_timesteps"]) == (best.iteration, best.timesteps)
    assert summary["best_eval_return"] == pytest.approx(best.eval_return)
    assert (summary["num_checkpoints"], summary["num_evaluated"], summary["bad_checkpoints"]) == (3, 3, [])
    expected = expected_metrics(best, run, data, "best")
    assert_same({k[len("best_"):]: v for k, v in summary.items() if k.startswith("best_")
                 and k[len("best_"):] in expected}, expected)
    assert {f"best_{k}" for k in expected} <= set(summary)
