"""runs.py: the listing of a run store and one run's description, their statuses, and that browsing writes nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import TINY_CAR1D, assert_user_error, tree_digest, train_run
from utils.analysis.history import HISTORY, SUMMARY
from utils.jobs.browse import describe_run, format_listing, list_store
from utils.runs.io import write_json_atomic
from utils.runs.store import RunPaths, read_run_info, run_lock, write_run_info


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store with a finished run `done` (evaluated under its sweep's results folder), a killed run `killed`
    (run.json still says running, no lock held), a damaged run `broken`, and a sweep record naming two runs."""
    root = tmp_path_factory.mktemp("browse")
    save_dir = root / "checkpoints"
    train_run(save_dir, "done", *TINY_CAR1D, "--seed=3", "--policy_dims=c8,4")
    shutil.copytree(save_dir / "done", save_dir / "killed")
    killed = RunPaths(save_dir / "killed")
    write_run_info(killed, {**read_run_info(killed), "run_id": "killed", "status": "running"})
    shutil.copytree(save_dir / "done", save_dir / "broken")
    (save_dir / "broken" / "run.json").write_text("[]")
    info = read_run_info(RunPaths(save_dir / "done"))
    write_run_info(RunPaths(save_dir / "done"), {**info, "sweep_id": "sw1"})
    write_json_atomic(save_dir / "_sweeps" / "sw1" / "sweep.json",
                      {"sweep_id": "sw1", "file": "sweeps/x.yaml", "method": "grid", "configs": [{}, {}],
                       "run_ids": ["done", "killed"], "extra_args": [], "created": "2026-01-01T00:00:00+00:00"})
    results = root / "results" / "sw1" / "done"
    results.mkdir(parents=True)
    (results / SUMMARY).write_text("{}")
    (results / HISTORY).write_text("iteration,timesteps\n0,0\n2,400\n")
    return root


def test_listing_names_every_run_with_its_real_status(store):
    listing = list_store(store / "checkpoints", store / "results")
    rows = {r.run_id: r for r in listing.runs}
    assert sorted(rows) == ["broken", "done", "killed"]
    done = rows["done"]
    assert (done.status, done.env_id, done.policy_dims, done.seed) == ("finished", "Car1DEnv-v1", (8, 4), 3)
    assert done.timesteps == 400 and done.checkpoints == 3 and done.sweep_id == "sw1"
    assert done.best_eval_return is not None
    assert done.results_dir == str(store / "results" / "sw1" / "done") and done.evaluated == 2
    assert rows["killed"].status == "stopped" and rows["killed"].results_dir is None
    assert rows["broken"].status == "damaged" and "run.json" in rows["broken"].problem
    (sweep,) = listing.sweeps
    assert (sweep.sweep_id, sweep.runs, sweep.finished, sweep.method) == ("sw1", 2, 1, "grid")
    text = format_listing(listing)
    assert "stopped" in text and "2/3" in text and "sw1" in text


def test_a_run_held_by_a_process_is_running(store):
    with run_lock(RunPaths(store / "checkpoints" / "killed")):
        rows = {r.run_id: r for r in list_store(store / "checkpoints", store / "results").runs}
    assert rows["killed"].status == "running"


def test_describe_says_what_to_run_next(store):
    stopped = describe_run(store / "checkpoints", store / "results", "killed")
    assert stopped["next"] == f"python train.py --resume=killed --save_dir={store / 'checkpoints'}"
    assert stopped["flags"]["seed"] == 3 and stopped["files"]["best"].endswith("best.pt")
    assert describe_run(store / "checkpoints", store / "results", "done")["next"].startswith("python evaluate.py")


def test_describe_names_the_traceback_a_bug_left_with_the_run(store, tmp_path):
    assert describe_run(store / "checkpoints", store / "results", "killed")["files"]["error_log"] is None
    shutil.copytree(store / "checkpoints" / "killed", tmp_path / "crashed")
    crashed = RunPaths(tmp_path / "crashed")
    write_run_info(crashed, {**read_run_info(crashed), "run_id": "crashed", "status": "failed",
                             "error": "ZeroDivisionError: division by zero"})
    crashed.error_log.write_text("Traceback (most recent call last):\n")
    described = describe_run(tmp_path, store / "results", "crashed")
    assert described["status"] == "failed" and described["error"] == "ZeroDivisionError: division by zero"
    assert described["files"]["error_log"] == str(crashed.error_log)


def test_cli_json_is_the_listing_and_browsing_writes_nothing(store, capsys):
    import runs

    before = tree_digest(store)
    assert runs.main(["--save_dir", str(store / "checkpoints"), "--results_dir", str(store / "results"),
                      "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {r["run_id"]: r["status"] for r in listing["runs"]} == {"broken": "damaged", "done": "finished",
                                                                   "killed": "stopped"}
    assert runs.main(["done", "--save_dir", str(store / "checkpoints"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "done"
    assert tree_digest(store) == before


def test_cli_mistakes_are_one_line(store, tmp_path):
    import runs

    assert_user_error(runs.main, ["nope", "--save_dir", str(store / "checkpoints")], "no run 'nope'", "done")
    assert_user_error(runs.main, ["--save_dir", str(tmp_path / "missing")], "no run store")
    for not_an_id in ("../done", "/tmp/x", "", "x" * 101):  # the positional id is a name, never a path
        assert_user_error(runs.main, [not_an_id, "--save_dir", str(store / "checkpoints")], "run_id")


def test_a_diverged_run_is_not_sent_back_to_resume(store, tmp_path):
    save_dir = tmp_path / "checkpoints"
    run = shutil.copytree(store / "checkpoints" / "done", save_dir / "nan")
    info = read_run_info(RunPaths(run))
    write_run_info(RunPaths(run), {**info, "run_id": "nan", "status": "failed",
                                   "error": "TrainingDiverged: training diverged at iteration 3 (non-finite loss)"})
    described = describe_run(save_dir, tmp_path / "results", "nan")
    assert "--resume" not in described["next"] and "--learning_rate" in described["next"]
