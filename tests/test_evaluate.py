"""evaluate.py and randomized_metric_helper.py end to end, plus the evaluation library's run lookup and sharding.

The run store is trained in-process (about a second); quick tests call main(argv) in this process, the slow ones
evaluate whole runs or start real processes."""
from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import evaluate as evaluate_cli
from models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
import randomized_metric_helper
from tests.helpers import (TINY_CAR1D, TINY_CHEETAH, assert_one_line_error, assert_user_error, run_cli, train_run,
                           tree_digest)
from tests.reference_regions import line_pieces_ref, path_pieces_ref
from utils.analysis.sources import resolve_runs
from utils.errors import UserError
from utils.jobs.evaluate import EvaluationPlan, evaluate, history_columns, plan_evaluation, result_group
from utils.runs.io import load_npz
from utils.runs.slurm import slurm_shard
from utils.settings import EvaluateSettings

TINY = TINY_CAR1D  # each run adds its own --policy_dims, which overrides c8,8
CHEETAH = TINY_CHEETAH


def _train(store: Path, run_id: str, *extra: str) -> Path:
    return train_run(store, run_id, *extra)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A sweep S of three tiny Car1D runs (two seeds of c8,8, one c4) in one run store."""
    store = tmp_path_factory.mktemp("store")
    _train(store, "a8", *TINY, "--policy_dims=c8,8", "--seed=0", "--sweep_id=S")
    _train(store, "b8", *TINY, "--policy_dims=c8,8", "--seed=1", "--sweep_id=S")
    _train(store, "c4", *TINY, "--policy_dims=c4", "--seed=0", "--sweep_id=S")
    return store


def _history(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _evaluate(store: Path, results: Path, *args: str):
    return run_cli("evaluate.py", f"--checkpoints_dir={store}", f"--results_dir={results}", "--quiet", *args)


# ----------------------------------------------------------------------------------------------------------------
# Quick unit tests
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_items", [0, 1, 5, 7, 12])
@pytest.mark.parametrize("count,minimum", [(1, 0), (3, 0), (4, 1), (5, 10), (13, 2)])
def test_slurm_chunks_cover_every_run_exactly_once(n_items, count, minimum):
    items = [f"run{i}" for i in range(n_items)]
    chunks = [slurm_shard(items, {"SLURM_ARRAY_TASK_ID": str(minimum + k), "SLURM_ARRAY_TASK_COUNT": str(count),
                                  "SLURM_ARRAY_TASK_MIN": str(minimum)}) for k in range(count)]
    assert [x for c in chunks for x in c] == items  # contiguous, in order, each once
    assert max(map(len, chunks)) - min(map(len, chunks)) <= 1
    assert slurm_shard(items, {}) == items
    with pytest.raises(UserError, match="outside"):
        slurm_shard(items, {"SLURM_ARRAY_TASK_ID": str(minimum + count), "SLURM_ARRAY_TASK_COUNT": str(count),
                            "SLURM_ARRAY_TASK_MIN": str(minimum)})


def test_expected_columns_use_design_names():
    cols = history_columns(EvaluateSettings(run_id="x", add_stochastic=True, random_lines=True,
                                            random_trajectories=True))
    for name in ["num_transitions_deterministic_fixed", "num_regions_deterministic_current",
                 "num_transitions_stochastic_current", "deterministic_fixed_trajectory_length_normalized",
                 "deterministic_fixed_normalized_density", "deterministic_fixed_transitions_per_length",
                 "stochastic_current_trajectory_timesteps", "deterministic_current_trajectory_length",
                 "mean_num_regions_random_trajectories", "std_num_regions_random_trajectories",
                 "mean_normalized_num_transitions_random_trajectories", "mean_trajectory_length_random_trajectories",
                 "mean_num_regions_random_lines_origin", "std_num_regions_random_lines_mean"]:
        assert name in cols, name


def test_a_run_of_a_sweep_has_its_results_and_random_data_with_the_sweep():
    assert result_group(EvaluateSettings(run_id="r"), None) == "r"
    assert result_group(EvaluateSettings(run_id="r"), "S") == "S"
    assert result_group(EvaluateSettings(sweep_id="S"), "S") == "S"
    for damaged in ("../x", "/abs", "a/b"):
        with pytest.raises(UserError, match="run.json"):
            result_group(EvaluateSettings(run_id="r"), damaged)
    assert result_group(EvaluateSettings(run_id="r"), "") == "r"  # an empty sweep id is no sweep


def test_plan_resolves_workers_wandb_and_plots_once(tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    plan = plan_evaluation(EvaluateSettings(run_id="r", results_dir=results, multi_processing=True), cpus=lambda: 7)
    assert plan.workers == 7 and plan.wandb_mode == "disabled" and not plan.wandb_log and not plan.wandb_online
    assert plan.plots and not results.exists()  # planning writes nothing
    plan = plan_evaluation(EvaluateSettings(run_id="r", results_dir=results, workers=3, no_plots=True), cpus=lambda: 7)
    assert plan.workers == 3 and not plan.plots
    # Not logged in: online falls back to offline, with one notice, given only when wandb is wanted for something.
    monkeypatch.setenv("WANDB_MODE", "")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    plan = plan_evaluation(EvaluateSettings(run_id="r", results_dir=results))
    assert plan.wandb_mode == "offline" and plan.wandb_log and len(plan.notices) == 1 and "offline" in plan.notices[0]
    plan = plan_evaluation(EvaluateSettings(run_id="r", results_dir=results, no_wandb_log=True))
    assert plan.wandb_mode == "offline" and not plan.wandb_log and plan.notices == ()


# ----------------------------------------------------------------------------------------------------------------
# A run end to end
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_evaluation_counts_match_an_independent_computation_and_rerun_is_idempotent(store, tmp_path):
    results = tmp_path / "results"
    res = _evaluate(store, results, "--run_id=a8", "--add_stochastic", "--log_locally")
    assert res.returncode == 0, res.stderr
    out = results / "S" / "a8"  # a run of sweep S: its results live with the sweep's, however it is evaluated
    rows = _history(out / "history.csv")
    assert [int(r["iteration"]) for r in rows] == [0, 1, 2]
    columns = history_columns(EvaluateSettings(run_id="a8", add_stochastic=True))
    for row in rows:
        for c in columns:
            assert c in row
            if c != "eval_return":
                assert math.isfinite(float(row[c])), (c, row[c])
    for name in ["history.csv", "summary.json", "normalized_density.png", "trajectory_length.png",
                 "region_count.png", "eval_return.png"]:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["depth"], summary["width"], summary["n"]) == (2, 8, 16)
    assert summary["n_params"] == 2 * 8 + 8 + 8 * 8 + 8 + 8 * 1 + 1
    assert summary["bad_checkpoints"] == [] and "best_num_regions_deterministic_fixed" in summary
    assert summary["best_eval_return"] is not None

    # Independent computation: the reference (loop) region counter on the cached raw states.
    run = store / "a8"
    fixed = load_npz(run / "trajectories" / "best_deterministic_seed0.npz")["states"]
    for row in rows:
        it = int(row["iteration"])
        policy = load_checkpoint(run / "checkpoints" / f"{it:06d}.pt")
        layers = [(W.numpy(), b.numpy()) for W, b in policy.hidden_layers]
        current = load_npz(run / "trajectories" / f"{it:06d}_deterministic_seed0.npz")["states"]
        assert len(fixed) == 1000 and len(current) == 1000  # Car1D never terminates: s_0..s_999
        for kind, states in (("fixed", fixed), ("current", current)):
            ref = path_pieces_ref(layers, policy.normalize(states))
            assert int(row[f"num_transitions_deterministic_{kind}"]) == ref["num_transitions"]
            assert int(row[f"num_regions_deterministic_{kind}"]) == ref["num_regions"]
            x = policy.normalize(states)
            length = np.linalg.norm(np.diff(x, axis=0), axis=1).sum()
            assert float(row[f"deterministic_{kind}_normalized_density"]) == pytest.approx(
                ref["num_transitions"] / (length * 16))

    before = _digest_and_times(tmp_path)
    cache_before = _digest_and_times(run / "trajectories")
    again = _evaluate(store, results, "--run_id=a8", "--add_stochastic")
    assert again.returncode == 0, again.stderr
    assert "0 checkpoints evaluated, 3 already done" in again.stdout
    assert _digest_and_times(tmp_path) == before and _digest_and_times(run / "trajectories") == cache_before

    # --overwrite recomputes everything and gets exactly the same numbers (sampling is seeded).
    shutil.rmtree(run / "trajectories")
    third = _evaluate(store, results, "--run_id=a8", "--add_stochastic", "--overwrite", "--no_plots")
    assert third.returncode == 0, third.stderr
    assert _history(out / "history.csv") == rows


@pytest.mark.slow
def test_halfcheetah_run(tmp_path):
    store = tmp_path / "store"
    _train(store, "hc", *CHEETAH)
    res = _evaluate(store, tmp_path / "results", "--run_id=hc", "--workers=2", "--no_plots")
    assert res.returncode == 0, res.stderr
    rows = _history(tmp_path / "results" / "hc" / "hc" / "history.csv")
    assert len(rows) == 3
    policy = load_checkpoint(store / "hc" / "checkpoints" / "000002.pt")
    states = load_npz(store / "hc" / "trajectories" / "000002_deterministic_seed0.npz")["states"]
    assert states.shape[1] == 17
    ref = path_pieces_ref([(W.numpy(), b.numpy()) for W, b in policy.hidden_layers], policy.normalize(states))
    assert int(rows[-1]["num_transitions_deterministic_current"]) == ref["num_transitions"]
    assert int(rows[-1]["num_regions_deterministic_current"]) == ref["num_regions"]


@pytest.mark.slow
def test_figures_in_the_chosen_format_without_run_ids_redrawn_only_when_something_changed(store, tmp_path):
    results = tmp_path / "results"
    out = results / "S" / "a8"  # a run of sweep S
    assert _evaluate(store, results, "--run_id=a8", "--format=svg").returncode == 0
    names = ["normalized_density", "trajectory_length", "region_count", "eval_return"]
    svgs = [out / f"{name}.svg" for name in names]
    for path in svgs:
        root = ET.parse(path).getroot()
        texts = " ".join(t for node in root.iter() if node.tag.endswith("text") for t in node.itertext())
        assert "Car1DEnv-v1 · c8,8" in texts and "a8" not in texts  # env and architecture, no run id
    assert not list(out.glob("*.png"))
    drawn = [p.stat().st_mtime_ns for p in svgs]
    assert _evaluate(store, results, "--run_id=a8", "--format=svg").returncode == 0
    assert [p.stat().st_mtime_ns for p in svgs] == drawn  # nothing new: nothing redrawn
    assert _evaluate(store, results, "--run_id=a8", "--format=pdf").returncode == 0
    assert all((out / f"{name}.pdf").read_bytes().startswith(b"%PDF-") for name in names)  # a new format is drawn


# ----------------------------------------------------------------------------------------------------------------
# A sweep with random data
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sweep_with_random_lines_and_trajectories(store, tmp_path):
    results, data = tmp_path / "results", tmp_path / "randomized"
    missing = _evaluate(store, results, "--sweep_id=S", "--evaluate_random_lines", f"--randomized_data_dir={data}")
    assert_one_line_error(missing, "missing", f"python randomized_metric_helper.py --sweep_id=S "
                                              f"--checkpoints_dir={store} --randomized_data_dir={data}")
    assert not list(results.rglob("history.csv"))

    made = run_cli("randomized_metric_helper.py", "--sweep_id=S", f"--checkpoints_dir={store}",
                   f"--save_dir={data}", "--num_random_lines=20", "--num_random_trajectories=2")
    assert made.returncode == 0, made.stderr
    lines = load_npz(data / "S" / "Car1DEnv-v1_random_lines.npz")
    assert lines["points"].shape == (20, 2)
    trajs = load_npz(data / "S" / "Car1DEnv-v1_random_trajectories.npz")
    assert list(trajs["lengths"]) == [1000, 1000]

    res = _evaluate(store, results, "--sweep_id=S", "--evaluate_random_lines", "--evaluate_random_trajectories",
                    f"--randomized_data_dir={data}")
    assert res.returncode == 0, res.stderr
    with open(results / "S" / "sweep.csv", newline="") as fh:
        sweep = list(csv.DictReader(fh))
    assert sorted(r["run_id"] for r in sweep) == ["a8", "b8", "c4"]
    assert {r["architecture"] for r in sweep} == {"c8,8", "c4"}
    for r in sweep:  # where training ended: the last checkpoint's eval return (every iteration is evaluated here)
        history = _history(results / "S" / r["run_id"] / "history.csv")
        assert (r["final_iteration"], r["final_eval_return"]) == (history[-1]["iteration"], history[-1]["eval_return"])
    for name in ["sweep_normalized_density", "sweep_region_count", "sweep_trajectory_length", "sweep_eval_return",
                 "sweep_random_lines", "sweep_random_trajectories", "sweep_regions_vs_neurons"]:
        assert (results / "S" / f"{name}.png").is_file()
    for name in ["random_lines", "random_trajectories"]:
        assert (results / "S" / "c4" / f"{name}.png").is_file()
    settings = EvaluateSettings(sweep_id="S", random_lines=True, random_trajectories=True)
    for run_id in ("a8", "b8", "c4"):
        rows = _history(results / "S" / run_id / "history.csv")
        for row in rows:
            for c in history_columns(settings):
                if c != "eval_return":
                    assert math.isfinite(float(row[c])), (run_id, c)
    # Random lines of one checkpoint against the reference counter.
    policy = load_checkpoint(store / "c4" / "checkpoints" / "000002.pt")
    x = policy.normalize(lines["points"])
    ref = line_pieces_ref([(W.numpy(), b.numpy()) for W, b in policy.hidden_layers], x, x)
    row = _history(results / "S" / "c4" / "history.csv")[-1]
    assert float(row["mean_num_regions_random_lines_origin"]) == pytest.approx(np.mean(ref["num_regions_per_line"]))

    # A re-run with nothing new rewrites nothing: same bytes and same modification times (sweep.csv, figures too).
    before = _digest_and_times(results)
    again = _evaluate(store, results, "--sweep_id=S", "--evaluate_random_lines", "--evaluate_random_trajectories",
                      f"--randomized_data_dir={data}")
    assert again.returncode == 0, again.stderr
    assert _digest_and_times(results) == before


def _digest_and_times(folder: Path) -> dict:
    return {**tree_digest(folder), **{f"{p}:mtime": p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}}


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------
def _copy_run(store: Path, run_id: str, new_store: Path, new_id: str | None = None) -> Path:
    target = new_store / (new_id or run_id)
    shutil.copytree(store / run_id, target, ignore=shutil.ignore_patterns("trajectories", "wandb"))
    return target


def _bad_input_cases(store: Path, tmp_path: Path) -> tuple[Path, list[tuple[list[str], tuple[str, ...]]]]:
    bad = tmp_path / "bad"
    bad.mkdir()
    no_ckpt = _copy_run(store, "a8", bad, "nockpt")
    shutil.rmtree(no_ckpt / "checkpoints")
    no_best = _copy_run(store, "a8", bad, "nobest")
    (no_best / "best.pt").unlink()
    dims = _copy_run(store, "a8", bad, "dims")
    shutil.copyfile(store / "c4" / "checkpoints" / "000001.pt", dims / "checkpoints" / "000001.pt")
    env = _copy_run(store, "a8", bad, "env")
    state = read_checkpoint(env / "checkpoints" / "000001.pt")
    state["config"] = {**state["config"], "env_id": "Car1DEnv-v0"}
    save_checkpoint(env / "checkpoints" / "000001.pt", {k: v for k, v in state.items() if k != "format"})
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cases = [
        ([], ("exactly one of --run_id",)),
        (["--run_id=a8", "--sweep_id=S"], ("exactly one of --run_id",)),
        (["--run_id=nosuch"], ("no run 'nosuch'", "a8", "wandb not searched")),
        (["--sweep_id=nosuch"], ("no sweep 'nosuch'", "a8")),
        (["--run_id=nockpt", f"--checkpoints_dir={bad}"], ("no checkpoints", "nockpt")),
        (["--run_id=nobest", f"--checkpoints_dir={bad}"], ("no best.pt",)),
        (["--run_id=dims", f"--checkpoints_dir={bad}"], ("000001.pt", "policy dims")),
        (["--run_id=env", f"--checkpoints_dir={bad}"], ("000001.pt", "Car1DEnv-v0")),
        (["--run_id=a8", "--device=cuda"], ("cuda", "--device=cpu")),
        (["--run_id=a8", f"--results_dir={blocker}/sub"], ("--results_dir",)),
        (["--run_id=a8", "--evaluate_random_trajectories", f"--randomized_data_dir={tmp_path}/none"],
         ("missing", "python randomized_metric_helper.py --sweep_id=S")),  # a8's sweep shares random data
        (["--run_id=a8", "--workers=0"], ("--workers",)),
    ]
    return bad, cases


def test_bad_inputs_fail_with_one_line(store, tmp_path):
    results = tmp_path / "results"
    _, cases = _bad_input_cases(store, tmp_path)
    before = tree_digest(store)
    for extra, needles in cases:
        args = [f"--checkpoints_dir={store}", f"--results_dir={results}", "--quiet", "--no_plots", *extra]
        assert_user_error(evaluate_cli.main, args, *needles)
        assert not results.exists(), extra  # not even an empty folder is left behind
    assert tree_digest(store) == before


@pytest.mark.slow
def test_bad_input_through_the_real_command_line(store, tmp_path):
    """The real processes: exit code 2, one `error:` line on stderr, no traceback, no results (evaluate.py: a flag
    error, a checkpoint of another shape; randomized_metric_helper.py: a flag error, an unknown run)."""
    results = tmp_path / "results"
    bad, cases = _bad_input_cases(store, tmp_path)
    before = tree_digest(store)
    wanted = ([], ["--run_id=dims", f"--checkpoints_dir={bad}"])
    chosen = [(extra, needles) for extra, needles in cases if extra in wanted]
    assert len(chosen) == 2
    for extra, needles in chosen:
        args = [f"--checkpoints_dir={store}", f"--results_dir={results}", "--quiet", "--no_plots", *extra]
        assert_one_line_error(run_cli("evaluate.py", *args), *needles)
    assert not results.exists() or not list(results.rglob("history.csv"))
    data = tmp_path / "randomized"
    helper = [f"--checkpoints_dir={store}", f"--save_dir={data}"]
    assert_one_line_error(run_cli("randomized_metric_helper.py", *helper), "exactly one of --run_id")
    assert_one_line_error(run_cli("randomized_metric_helper.py", *helper, "--run_id=nosuch"), "no run 'nosuch'")
    assert not data.exists() or not list(data.rglob("*.npz"))
    assert tree_digest(store) == before


def test_randomized_metric_helper_bad_inputs_fail_with_one_line(store, tmp_path):
    data = tmp_path / "randomized"
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    base = [f"--checkpoints_dir={store}", f"--save_dir={data}"]
    before = tree_digest(store)
    assert_user_error(randomized_metric_helper.main, base, "exactly one of --run_id")
    assert_user_error(randomized_metric_helper.main, [*base, "--run_id=a8", "--sweep_id=S"],
                      "exactly one of --run_id")
    assert_user_error(randomized_metric_helper.main, [*base, "--run_id=nosuch"], "no run 'nosuch'", "a8")
    assert_user_error(randomized_metric_helper.main, [*base, "--sweep_id=nosuch"], "no sweep 'nosuch'")
    assert_user_error(randomized_metric_helper.main, [*base, "--run_id=a8", "--num_random_lines=0"],
                      "--num_random_lines")
    for spelling in ("--save_dir", "--randomized_data_dir"):  # the paper's spelling and ours name one folder
        assert_user_error(randomized_metric_helper.main,
                          [f"--checkpoints_dir={store}", f"{spelling}={blocker}/sub", "--run_id=a8"],
                          "--randomized_data_dir", f"{blocker}/sub")
    assert not list(tmp_path.rglob("*.npz")) and not data.exists()
    assert tree_digest(store) == before


@pytest.mark.slow
def test_corrupt_checkpoint_is_named_and_other_epochs_are_evaluated(store, tmp_path):
    bad = tmp_path / "bad"
    run = _copy_run(store, "a8", bad)
    data = (run / "checkpoints" / "000001.pt").read_bytes()
    (run / "checkpoints" / "000001.pt").write_bytes(data[: len(data) // 3])
    result = _evaluate(bad, tmp_path / "results", "--run_id=a8", "--no_plots")
    assert_one_line_error(result, "000001.pt", "summary.json")
    out = tmp_path / "results" / "S" / "a8"
    assert [int(r["iteration"]) for r in _history(out / "history.csv")] == [0, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert [Path(b["file"]).name for b in summary["bad_checkpoints"]] == ["000001.pt"]
    assert not list(tmp_path.rglob("*.tmp"))


# ----------------------------------------------------------------------------------------------------------------
# The wandb API path (the client replaced by a fake: no network here)
# ----------------------------------------------------------------------------------------------------------------
class FakeArtifact:
    def __init__(self, run_id: str, path: Path, iteration: int):
        self.name, self.type, self.metadata = f"checkpoints-{run_id}:v{iteration}", "model", {"iteration": iteration}
        self._path = path

    def download(self, root: str) -> str:
        shutil.copyfile(self._path, Path(root) / f"{self.metadata['iteration']:06d}.pt")
        return root


class FakeRun:
    def __init__(self, run_dir: Path, name: str):
        info = json.loads((run_dir / "run.json").read_text())
        self.id, self.name, self.state = info["run_id"], name, "finished"
        self.config = {**info["config"], "sweep_id": info.get("sweep_id")}
        self._artifacts = [FakeArtifact(self.id, p, int(p.stem)) for p in sorted((run_dir / "checkpoints").glob("*.pt"))]

    def logged_artifacts(self):
        return list(self._artifacts)


class FakeApi:
    def __init__(self, runs: list[FakeRun]):
        self.runs_by_id = {r.id: r for r in runs}
        self.calls = []

    def run(self, path: str):
        self.calls.append(("run", path))
        run_id = path.split("/")[-1]
        if run_id not in self.runs_by_id:
            raise ValueError(f"Could not find run {path}")
        return self.runs_by_id[run_id]

    def runs(self, path: str, filters: dict | None = None):
        self.calls.append(("runs", path, filters))
        key, value = next(iter((filters or {}).items()))
        if key == "display_name":
            return [r for r in self.runs_by_id.values() if r.name == value]
        return [r for r in self.runs_by_id.values() if r.config.get("sweep_id") == value]

    def sweep(self, path: str):
        self.calls.append(("sweep", path))
        sweep_id = path.split("/")[-1]
        if sweep_id != "wsweep":
            raise ValueError("no such sweep")
        return SimpleNamespace(runs=list(self.runs_by_id.values()))


def test_wandb_api_lookup_and_artifact_download(store, tmp_path):
    api = FakeApi([FakeRun(store / "a8", "name-a8"), FakeRun(store / "c4", "name-c4")])
    empty = tmp_path / "empty_store"
    base = dict(entity="me", project="deep_rl_regions")

    with pytest.raises(UserError, match="wandb not searched"):
        resolve_runs(empty, run_id="a8", **base, wandb_online=False, api_factory=lambda: api)
    (found,) = resolve_runs(empty, run_id="a8", **base, wandb_online=True, api_factory=lambda: api)
    assert found.source == "wandb" and found.run.root == empty / ".wandb_cache" / "a8"
    assert [i for i, _ in found.run.list_checkpoints()] == [0, 1, 2] and found.run.best.is_file()
    assert found.info["env_id"] == "Car1DEnv-v1" and found.info["config"]["policy_dims"] == [8, 8]
    for it, path in found.run.list_checkpoints():
        assert path.read_bytes() == (store / "a8" / "checkpoints" / f"{it:06d}.pt").read_bytes()
    (by_name,) = resolve_runs(empty, run_id="name-c4", **base, wandb_online=True, api_factory=lambda: api)
    assert by_name.run_id == "c4"
    wsweep = resolve_runs(empty, sweep_id="wsweep", **base, wandb_online=True, api_factory=lambda: api)
    assert sorted(r.run_id for r in wsweep) == ["a8", "c4"]
    local_sweep = resolve_runs(empty, sweep_id="S", **base, wandb_online=True, api_factory=lambda: api)
    assert sorted(r.run_id for r in local_sweep) == ["a8", "c4"]  # train.py --sweep_id is a config field
    with pytest.raises(UserError, match="nor in wandb me/deep_rl_regions"):
        resolve_runs(empty, run_id="zzz", **base, wandb_online=True, api_factory=lambda: api)
    # A run that exists locally is taken from the run store, never downloaded.
    (local,) = resolve_runs(store, sweep_id="wsweep", entity="me", wandb_online=True, api_factory=lambda: api)[:1]
    assert local.source == "local" and local.run.root == store / "a8"

    # The downloaded run evaluates like a local one.
    settings = EvaluateSettings(run_id="a8", checkpoints_dir=empty, results_dir=tmp_path / "results", no_plots=True,
                                entity="me", project_name="deep_rl_regions")
    plan = EvaluationPlan(settings, wandb_mode="online", wandb_log=False, workers=1)  # wandb looked up, not logged to
    report = evaluate(plan, api_factory=lambda: api)
    rows = _history(report.runs[0].out_dir / "history.csv")
    assert len(rows) == 3


def test_random_trajectories_with_inconsistent_lengths_are_refused(tmp_path):
    import numpy as np

    from utils.runs.io import save_npz_atomic
    from utils.analysis.random_data import load_random_data, trajectories_path
    path = trajectories_path(tmp_path, "S", "Car1DEnv-v1")
    recorded = {"seed": np.int64(0), "env_id": np.str_("Car1DEnv-v1")}  # as generate_random_data writes them
    for lengths, problem in ((np.array([3, 3]), "do not add up"), (np.array([0, 10]), "do not add up"),
                             (None, "no trajectory lengths")):
        arrays = {"states": np.zeros((10, 2))} | ({} if lengths is None else {"lengths": lengths})
        save_npz_atomic(path, **arrays, **recorded)
        with pytest.raises(UserError, match=problem):
            load_random_data(tmp_path, "S", "Car1DEnv-v1", 2, lines=False, trajectories=True, fix_command="make it")
    save_npz_atomic(path, states=np.zeros((10, 2)), lengths=np.array([4, 6]), **recorded)
    data = load_random_data(tmp_path, "S", "Car1DEnv-v1", 2, lines=False, trajectories=True, fix_command="x")
    assert [len(t) for t in data.trajectories] == [4, 6]


@pytest.mark.slow
def test_evaluation_is_logged_to_wandb_offline_without_login(store, tmp_path):
    env = {"WANDB_MODE": "", "HOME": str(tmp_path), "NETRC": str(tmp_path / "none")}
    result = run_cli("evaluate.py", "--run_id=c4", f"--checkpoints_dir={store}", f"--results_dir={tmp_path}",
                     "--entity=USERNAME", "--project_name=deep_rl_regions", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert "offline" in result.stderr
    runs = list((tmp_path / "S" / "c4" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_wandb_receives_every_history_row_at_its_iteration_and_the_summary(store, tmp_path, monkeypatch):
    """What evaluate.py logs to wandb is exactly what it writes to disk: each history.csv row (numbers) at its
    iteration as the step, and summary.json's scalar values as the run summary."""
    import utils.jobs.evaluate as evaluate_job
    from utils.analysis.history import read_history

    class RecordingTracker:
        def __init__(self, mode, **kwargs):
            self.mode, self.kwargs, self.logged, self.summary, self.notices, self.finished = mode, kwargs, [], {}, [], 0

        url = None

        def log(self, metrics, step=None):
            self.logged.append((step, dict(metrics)))

        def set_summary(self, values):
            self.summary.update(values)

        def finish(self, exit_code=0):
            self.finished += 1

    trackers = []
    monkeypatch.setattr(evaluate_job, "start_tracking",
                        lambda mode, **kw: trackers.append(RecordingTracker(mode, **kw)) or trackers[-1])
    results = tmp_path / "results"
    assert evaluate_cli.main(["--run_id=c4", f"--checkpoints_dir={store}", f"--results_dir={results}", "--quiet",
                              "--no_plots", "--wandb_mode=offline", "--project_name=proj"]) == 0
    (tracker,) = trackers
    assert tracker.mode == "offline" and tracker.kwargs["project"] == "proj" and tracker.finished == 1
    assert tracker.kwargs["job_type"] == "evaluate" and tracker.kwargs["config"]["evaluated_run_id"] == "c4"
    rows = read_history(results / "S" / "c4" / "history.csv")
    assert len(rows) == 3 and [step for step, _ in tracker.logged] == [r["iteration"] for r in rows]
    for (_, logged), row in zip(tracker.logged, rows):
        assert logged == {k: v for k, v in row.items() if isinstance(v, (int, float))}
    summary = json.loads((results / "S" / "c4" / "summary.json").read_text())
    assert tracker.summary == {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}
    assert tracker.summary["best_num_regions_deterministic_fixed"] >= 1


def test_trajectory_cache_is_reused_only_for_the_same_weights(tmp_path):
    import dataclasses

    import numpy as np
    import torch

    from models.checkpoint import load_checkpoint
    from tests.helpers import small_trainer
    from utils.runs.io import load_npz
    from utils.analysis.trajectories import cache_path, cached_episode
    # an untrained checkpoint is enough (and quick): the cache must follow the weights, whatever they are
    trainer = small_trainer(policy_dims=(8, 8), norm_warmup_steps=20)
    trainer.warmup()
    save_checkpoint(tmp_path / "000001.pt", trainer.state_dict())
    policy = load_checkpoint(tmp_path / "000001.pt")
    first = cached_episode(tmp_path, "000001", policy, "Car1DEnv-v1", stochastic=False, seed=0)
    path = cache_path(tmp_path, "000001", "deterministic", 0)
    stamp = path.stat().st_mtime_ns
    again = cached_episode(tmp_path, "000001", policy, "Car1DEnv-v1", stochastic=False, seed=0)
    assert np.array_equal(first.states, again.states) and path.stat().st_mtime_ns == stamp
    # same iteration, other weights (a re-trained iteration): the cache must not be trusted
    W, b = policy.head
    other = dataclasses.replace(policy, head=(W, b + torch.ones_like(b)))
    assert other.weights_digest != policy.weights_digest
    cached_episode(tmp_path, "000001", other, "Car1DEnv-v1", stochastic=False, seed=0)
    assert str(load_npz(path)["digest"]) == other.weights_digest


@pytest.mark.slow
def test_episodes_sampled_across_runs_in_workers_are_those_of_one_process(store, tmp_path):
    """--workers=2 samples the runs' episodes in two processes (a run per batch), --workers=1 each run's in one
    lockstep batch here: the trajectory caches and history.csv files are identical either way."""
    runs = {}
    for workers in (1, 2):
        copy = tmp_path / f"store{workers}"
        shutil.copytree(store, copy, ignore=shutil.ignore_patterns("trajectories"))
        res = _evaluate(copy, tmp_path / f"results{workers}", "--sweep_id=S", "--add_stochastic", "--no_plots",
                        f"--workers={workers}")
        assert res.returncode == 0, res.stderr
        runs[workers] = {name: (tree_digest(copy / name / "trajectories"),
                                _history(tmp_path / f"results{workers}" / "S" / name / "history.csv"))
                         for name in ("a8", "b8", "c4")}
    for name, (caches, rows) in runs[1].items():
        assert len(caches) == 2 * (len(rows) + 1)  # every checkpoint and best.pt, deterministic and stochastic
        assert runs[2][name] == (caches, rows)
