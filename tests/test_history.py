"""utils.analysis.history: history.csv, summary.json and sweep.csv as written and read back."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from utils.analysis.checkpoint_metrics import UnreadableCheckpoint, expected_columns
from utils.analysis.history import (EarlierResults, best_metrics, earlier_results, is_complete, metric_columns,
                                    read_history, read_sweep_results, run_summary, write_history, write_sweep_csv)
from utils.analysis.sources import ResolvedRun
from utils.errors import UserError
from utils.runs.store import RunPaths

COLUMNS = ["iteration", "timesteps", "eval_return", "num_regions_deterministic_fixed", "density"]


def _row(iteration: int, **values) -> dict:
    return {"iteration": iteration, "timesteps": 100 * iteration, "eval_return": None,
            "num_regions_deterministic_fixed": 7, "density": 0.1 + iteration / 3, **values}


def test_history_round_trip_keeps_exact_numbers_and_types(tmp_path):
    path = tmp_path / "out" / "history.csv"
    rows = [_row(0), _row(1, eval_return=-12.5), _row(2, density=1e-20, eval_return=3.0)]
    write_history(path, rows, COLUMNS)
    back = read_history(path)
    assert back[1] == rows[1] and back[2] == rows[2]
    assert back[0] == {**rows[0], "eval_return": ""}  # None is written as an empty cell
    assert type(back[2]["eval_return"]) is float and type(back[2]["iteration"]) is int
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert not list(path.parent.glob("*.tmp"))
    assert read_history(tmp_path / "none.csv") == []


def test_history_keeps_extra_columns_of_earlier_runs_after_the_expected_ones(tmp_path):
    path = tmp_path / "history.csv"
    rows = [_row(0, zeta=1.5, alpha=2), _row(1)]  # e.g. earlier runs with --add_stochastic
    write_history(path, rows, COLUMNS)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS + ["alpha", "zeta"])
    assert lines[2].endswith(",,")  # a row without the extra columns leaves them empty
    back = read_history(path)
    assert back[0]["alpha"] == 2 and back[0]["zeta"] == 1.5 and back[1]["zeta"] == ""


def test_a_row_is_complete_with_a_finite_number_in_every_column_but_eval_return():
    assert is_complete(_row(0), COLUMNS)  # eval_return None: not every checkpoint was evaluated in training
    assert is_complete(_row(0, eval_return=""), COLUMNS)
    assert not is_complete(_row(0, density=""), COLUMNS)  # an empty cell (column added since)
    assert not is_complete(_row(0, density=math.nan), COLUMNS)
    assert not is_complete(_row(0, density=math.inf), COLUMNS)
    assert not is_complete({k: v for k, v in _row(0).items() if k != "density"}, COLUMNS)
    assert not is_complete(_row(0, density="n/a"), COLUMNS)
    assert is_complete(_row(0, density=""), COLUMNS[:4])  # only the columns asked for count


def test_expected_columns_begin_with_the_step_columns():
    cols = expected_columns(("deterministic",))
    assert cols[:4] == ["iteration", "timesteps", "eval_return", "deterministic_current_episode_return"]
    assert metric_columns(cols) == cols[3:]
    more = expected_columns(("deterministic", "stochastic"), random_trajectories=True, random_lines=True)
    assert more[:len(cols)] == cols and len(set(more)) == len(more)


def _summary_values(**values) -> dict:
    """Every key run_summary writes (made-up values), overridden by `values`."""
    return {"run_id": "r", "env_id": "Car1DEnv-v1", "source": "local", "run_dir": "store/r", "sweep_id": None,
            "policy_dims": [8], "architecture": "c8", "depth": 1, "width": 8, "n": 8, "n_params": 41, "seed": 0,
            "best_iteration": 2, "best_timesteps": 200, "best_eval_return": None, "num_checkpoints": 3,
            "num_evaluated": 3, "bad_checkpoints": [], "fixed_trajectory": {}, "evaluation_seed": 0,
            "columns": COLUMNS, **values}


def _summary(out_dir, fixed: dict, **values) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(_summary_values(fixed_trajectory=fixed, **values)))


def test_earlier_rows_are_reused_only_for_the_same_fixed_trajectory(tmp_path):
    out = tmp_path / "out"
    fixed = {"digest": "abc", "seed": 0, "random_data": None}
    write_history(out / "history.csv", [_row(0), _row(1, density="")], COLUMNS)
    _summary(out, fixed, best_density=0.5, best_num_regions_deterministic_fixed=7, num_evaluated=2)
    earlier = earlier_results(out, fixed, overwrite=False)
    assert sorted(earlier.rows) == [0, 1]
    assert earlier.has_row(0, COLUMNS) and not earlier.has_row(1, COLUMNS) and not earlier.has_row(2, COLUMNS)
    assert earlier.has_best(COLUMNS) and not earlier.has_best(COLUMNS + ["new_metric"])
    other = earlier_results(out, {**fixed, "digest": "new"}, overwrite=False)
    assert other.rows == {} and not other.has_best(COLUMNS)
    assert other.summary["best_density"] == 0.5  # the summary is still read (best_* carried over when kept)
    assert earlier_results(out, fixed, overwrite=True) == EarlierResults({}, {})
    (out / "summary.json").write_text("{not json")  # damage is named, never taken for "no earlier results"
    with pytest.raises(UserError, match="summary.json is damaged.*--overwrite"):
        earlier_results(out, fixed, overwrite=False)
    assert earlier_results(out, fixed, overwrite=True) == EarlierResults({}, {})  # --overwrite reads nothing


def test_best_metrics_come_from_the_new_row_else_from_the_earlier_summary():
    earlier = {"best_density": 0.5, "best_iteration": 3, "run_id": "r"}
    assert best_metrics(_row(4, density=0.25), earlier, COLUMNS) == {"best_num_regions_deterministic_fixed": 7,
                                                                     "best_density": 0.25}
    assert best_metrics(None, earlier, COLUMNS) == {"best_density": 0.5, "best_iteration": 3}


def test_run_summary_contents(tmp_path):
    run = ResolvedRun(RunPaths(tmp_path / "r"), {"env_id": "Car1DEnv-v1", "sweep_id": "S", "best_eval_return": 9.0,
                                                  "config": {"policy_dims": [8, 4], "seed": 3}})
    best = SimpleNamespace(widths=[8, 4], n_neurons=12, n_params=2 * 8 + 8 + 8 * 4 + 4 + 4 + 1, iteration=5,
                           timesteps=500, eval_return=None)
    bad = UnreadableCheckpoint("000001", "r/checkpoints/000001.pt", "truncated")
    summary = run_summary(run, best, num_checkpoints=3, num_evaluated=2, bad_checkpoints=[bad],
                          fixed_trajectory={"digest": "d"}, evaluation_seed=0, columns=COLUMNS,
                          best_values={"best_density": 0.5, "best_iteration": 99})
    assert summary["architecture"] == "c8,4" and summary["policy_dims"] == [8, 4]
    assert (summary["depth"], summary["width"], summary["n"], summary["n_params"]) == (2, 8, 12, 65)
    assert summary["best_eval_return"] == 9.0  # from run.json when the checkpoint stores none
    assert summary["best_iteration"] == 5 and summary["best_density"] == 0.5  # step keys are never overwritten
    assert summary["bad_checkpoints"] == [{"file": "r/checkpoints/000001.pt", "error": "truncated"}]
    assert set(summary) == {"run_id", "env_id", "source", "run_dir", "sweep_id", "policy_dims", "architecture",
                            "depth", "width", "n", "n_params", "seed", "best_iteration", "best_timesteps",
                            "best_eval_return", "num_checkpoints", "num_evaluated", "bad_checkpoints",
                            "fixed_trajectory", "evaluation_seed", "columns", "best_density", "final_iteration",
                            "final_timesteps", "final_eval_return"}


def test_sweep_csv_has_one_row_per_run_summary(tmp_path):
    for run_id, arch, value in (("b", "c4", 2.5), ("a", "c8,8", None)):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "summary.json").write_text(json.dumps(_summary_values(
            run_id=run_id, architecture=arch, n=8, best_zz=value, best_density=1.0, other=1)))
        write_history(tmp_path / run_id / "history.csv", [_row(0)], COLUMNS)
    summaries, histories = read_sweep_results(tmp_path)
    assert [s["run_id"] for s in summaries] == ["a", "b"] and histories["b"][0]["iteration"] == 0
    path, _ = write_sweep_csv(tmp_path, summaries)
    lines = path.read_text().splitlines()
    assert lines[0] == ("run_id,architecture,depth,width,n,n_params,seed,env_id,best_iteration,best_timesteps,"
                        "best_eval_return,final_iteration,final_timesteps,final_eval_return,num_checkpoints,num_evaluated,"
                        "best_density,best_zz")
    assert lines[1:] == ["a,\"c8,8\",1,8,8,41,0,Car1DEnv-v1,2,200,,,,,3,3,1.0,", "b,c4,1,8,8,41,0,Car1DEnv-v1,2,200,,,,,3,3,1.0,2.5"]
    assert read_sweep_results(tmp_path / "empty") == ([], {})


@pytest.mark.parametrize("value", [0.1, 1 / 3, 1e-300, 123456789.123456789])
def test_floats_read_back_bit_for_bit(tmp_path, value):
    write_history(tmp_path / "h.csv", [_row(0, density=value)], COLUMNS)
    assert read_history(tmp_path / "h.csv")[0]["density"] == value
