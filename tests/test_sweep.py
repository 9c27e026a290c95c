"""sweep.py: file validation, grid/random expansion, parallel runs, resume after a kill, bad input.

Quick tests call sweep.main / train.main in this process; every test that trains a sweep (train.py processes)
is slow."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sweep
import train
from tests.helpers import (ROOT, TINY_SWEEP_PARAMS, assert_one_line_error, assert_user_error, run_cli,
                           tree_digest)
from models.checkpoint import load_checkpoint
from tests.reference_regions import path_pieces_ref
from utils.errors import UserError
from utils.runs.io import load_npz
from utils.runs.store import is_locked
from utils.flags import flag_names, parse_settings
import utils.jobs.sweep as sweep_job
from utils.jobs.sweep import (SweepRecord, attempt_logs, eval_process_for, next_attempt_log, open_sweep,
                              prepare_sweep, sweep_configurations, train_command)
from utils.jobs.train import prepare_run
from utils.runs.sweep_files import expand_grid, load_sweep_file, sample_random
from utils.settings import SweepSettings, TrainSettings

VALID = set(flag_names(TrainSettings))

TINY_PARAMS = TINY_SWEEP_PARAMS


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_expansion_order_matches_hand_computed_list(tmp_path):
    spec = load_sweep_file(write(tmp_path, """
program: train.py
method: grid
parameters:
  env: {value: Car1DEnv-v1}
  policy_dims: {values: ["c8", "c16"]}
  seed: {values: [0, 1, 2]}
"""), VALID)
    assert expand_grid(spec) == [
        {"env": "Car1DEnv-v1", "policy_dims": "c8", "seed": 0}, {"env": "Car1DEnv-v1", "policy_dims": "c8", "seed": 1},
        {"env": "Car1DEnv-v1", "policy_dims": "c8", "seed": 2}, {"env": "Car1DEnv-v1", "policy_dims": "c16", "seed": 0},
        {"env": "Car1DEnv-v1", "policy_dims": "c16", "seed": 1}, {"env": "Car1DEnv-v1", "policy_dims": "c16", "seed": 2},
    ]


def test_random_expansion_is_seeded_and_within_bounds(tmp_path):
    spec = load_sweep_file(write(tmp_path, """
program: train.py
method: random
parameters:
  policy_dims: {values: ["c8", "c16", "c32"]}
  learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.01}
  seed: {distribution: int_uniform, min: 0, max: 3}
  log_std_init: {distribution: uniform, min: -3, max: -1}
  env: {value: Car1DEnv-v1}
"""), VALID)
    configs = sample_random(spec, 50, seed=7)
    assert configs == sample_random(spec, 50, seed=7) and configs != sample_random(spec, 50, seed=8)
    assert len(configs) == 50
    assert {c["policy_dims"] for c in configs} == {"c8", "c16", "c32"}
    assert all(1e-4 <= c["learning_rate"] <= 1e-2 and c["seed"] in (0, 1, 2, 3) for c in configs)
    assert all(-3 <= c["log_std_init"] <= -1 and c["env"] == "Car1DEnv-v1" for c in configs)
    # hand-computed: the first draw with numpy's default_rng(7), parameters in file order
    import math

    import numpy as np
    rng = np.random.default_rng(7)
    first = {"policy_dims": ["c8", "c16", "c32"][int(rng.integers(3))],
             "learning_rate": math.exp(rng.uniform(math.log(1e-4), math.log(1e-2))),
             "seed": int(rng.integers(0, 4)), "log_std_init": float(rng.uniform(-3, -1))}
    assert {k: configs[0][k] for k in first} == first


def test_car1d_sweep_file_expands_to_nine_runs(repo_root):
    spec = load_sweep_file(repo_root / "sweeps" / "car1d_widths.yaml", VALID)
    configs = expand_grid(spec)
    assert len(configs) == 9
    assert {c["policy_dims"] for c in configs} == {"c8,8", "c16,16", "c32,32"}
    assert {c["seed"] for c in configs} == {0, 1, 2}


@pytest.mark.parametrize("name", ["halfcheetah", "walker2d", "ant", "swimmer", "hopper"])
def test_paper_grids_parse(repo_root, name):
    configs = expand_grid(load_sweep_file(repo_root / "sweeps" / f"{name}.yaml", VALID))
    assert len(configs) == 80
    depths = {len(c["policy_dims"][1:].split(",")) for c in configs}
    assert depths == {1, 2, 3, 4}


BAD_SWEEP_FILES = [
    ("program: train.py\nparameters:\n  env: {value: Car1DEnv-v1\n", ("line", "yaml")),
    ("program: train.py\nparameters:\n  nosuchflag: {value: 1}\n", ("nosuchflag", "policy_dims")),
    ("program: train.py\nparameters:\n  seed: {values: []}\n", ("empty", "seed")),
    ("program: other.py\nparameters:\n  seed: {value: 1}\n", ("program", "train.py")),
    ("program: train.py\nmethod: bayes\nparameters:\n  seed: {value: 1}\n", ("bayes",)),
    ("program: train.py\nparameters:\n  save_dir: {value: x}\n", ("save_dir", "sweep.py")),
    ("program: train.py\nparameters:\n  help: {value: 1}\n", ("unknown parameter 'help'",)),
]


def test_the_list_of_valid_keys_holds_only_train_flags(tmp_path):
    message = assert_user_error(sweep.main, [str(write(tmp_path, "program: train.py\nparameters:\n  sed: {value: 1}\n"))],
                                "unknown parameter 'sed'")
    listed = message.split("valid train.py flags are ")[1].split(";")[0].split(", ")
    assert "help" not in listed and "seed" in listed and set(listed) <= set(flag_names(TrainSettings))


@pytest.mark.parametrize("text,needles", BAD_SWEEP_FILES)
def test_bad_sweep_files(tmp_path, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(UserError):
        load_sweep_file(path, VALID)
    assert_user_error(sweep.main, [str(path), f"--save_dir={tmp_path / 'store'}"], *needles)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("key", ["nsteps", "n_steps"])
def test_both_spellings_of_nsteps_reach_train_py(tmp_path, key):
    params = TINY_PARAMS.replace("  nsteps:", f"  {key}:") + '  policy_dims: {values: ["c4", "c8"]}\n'
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n" + params)
    spec, configs = sweep_configurations(SweepSettings(file=str(path)))
    assert [c[key] for c in configs] == [100, 100] and list(spec.parameters)[2] == key
    record = SweepRecord("s", str(path), spec.method, configs, ["s-000", "s-001"])
    command = train_command(record, 1, tmp_path / "store")
    assert f"--{key}=100" in command
    settings = parse_settings(TrainSettings, command[2:], "train.py", "")  # what train.py parses
    assert settings.nsteps == 100 and settings.policy_dims == "c8" and settings.run_id == "s-001"
    plan = prepare_run(settings, {"WANDB_MODE": "disabled"})
    assert plan.config.n_steps == 100 and plan.run_info["flags"]["nsteps"] == 100
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("workers, cpus, expected", [(1, 2, None), (2, 2, "inprocess"), (2, 4, None),
                                                     (3, 4, "inprocess"), (1, 1, "inprocess")])
def test_parallel_trainings_that_fill_the_cpus_evaluate_in_process(monkeypatch, workers, cpus, expected):
    monkeypatch.setattr(sweep_job, "available_cpus", lambda: cpus)
    assert eval_process_for(workers) == expected


@pytest.mark.parametrize("own", [None, "subprocess"])
def test_the_sweeps_eval_process_yields_to_the_sweep_files(tmp_path, own):
    params = TINY_PARAMS + (f"  eval_process: {{value: {own}}}\n" if own else "")
    path = write(tmp_path, "program: train.py\nparameters:\n" + params)
    spec, configs = sweep_configurations(SweepSettings(file=str(path)))
    record = SweepRecord("s", str(path), spec.method, configs, ["s-000"])
    command = train_command(record, 0, tmp_path / "store", "inprocess")
    settings = parse_settings(TrainSettings, command[2:], "train.py", "")
    assert settings.eval_process == (own or "inprocess")
    without = parse_settings(TrainSettings, train_command(record, 0, tmp_path / "store")[2:], "train.py", "")
    assert without.eval_process == (own or "auto")  # no choice of the sweep's: train.py's default


def test_two_spellings_of_one_flag_are_refused(tmp_path):
    path = write(tmp_path, "program: train.py\nparameters:\n" + TINY_PARAMS + "  n_steps: {value: 50}\n")
    with pytest.raises(UserError, match="nsteps and n_steps both set train.py's --nsteps"):
        sweep_configurations(SweepSettings(file=str(path)))
    assert_one_line_error(run_cli("sweep.py", str(path), f"--save_dir={tmp_path / 'store'}"), "n_steps", "keep one")
    assert not (tmp_path / "store").exists()


def test_a_bad_sweep_id_writes_nothing(tmp_path):
    path = write(tmp_path, "program: train.py\nparameters:\n" + TINY_PARAMS)
    with pytest.raises(UserError, match="--sweep_id"):
        prepare_sweep(SweepSettings(file=str(path), sweep_id="../x", save_dir=str(tmp_path / "store")))
    assert not (tmp_path / "store").exists()


def test_missing_file_and_bad_workers(tmp_path):
    assert_user_error(sweep.main, [str(tmp_path / "nope.yaml")], "not found")
    good = write(tmp_path, "program: train.py\nparameters:\n" + TINY_PARAMS)
    assert_user_error(sweep.main, [str(good), "--workers=0"], "--workers")
    assert_user_error(sweep.main, ["--resume=nosuch", f"--save_dir={tmp_path}"], "no sweep")


@pytest.mark.slow
def test_bad_input_through_the_real_command_line(tmp_path):
    """The real process: exit code 2, one `error:` line on stderr, no traceback (a bad file, a bad flag)."""
    text, needles = BAD_SWEEP_FILES[0]
    path = write(tmp_path, text)
    assert_one_line_error(run_cli("sweep.py", str(path), f"--save_dir={tmp_path / 'store'}"), *needles)
    assert_one_line_error(run_cli("sweep.py", str(path), "--workers=0"), "--workers")
    assert not (tmp_path / "store").exists()


def _runs(store: Path, sweep_id: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(store.glob(f"{sweep_id}-*/run.json"))]


@pytest.mark.slow
def test_parallel_workers_finishing_together_keep_the_store_intact(tmp_path):
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n" + TINY_PARAMS
                 + '  policy_dims: {values: ["c4", "c6"]}\n  seed: {values: [0, 1]}\n')
    store = tmp_path / "store"
    result = run_cli("sweep.py", str(path), "--workers=4", f"--save_dir={store}", "--sweep_id=par", "--quiet",
                     timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = _runs(store, "par")
    assert len(runs) == 4 and all(r["status"] == "finished" and r["sweep_id"] == "par" for r in runs)
    assert sorted((r["config"]["policy_dims"][0], r["seed"]) for r in runs) == [(4, 0), (4, 1), (6, 0), (6, 1)]
    for run_dir in store.glob("par-*"):
        assert not list(run_dir.rglob("*.tmp"))
        assert len(list((run_dir / "checkpoints").glob("*.pt"))) == 3
    assert json.loads((store / "_sweeps" / "par" / "sweep.json").read_text())["run_ids"] == [
        "par-000", "par-001", "par-002", "par-003"]


@pytest.mark.slow
def test_resume_after_killing_the_sweep_finishes_only_the_rest(tmp_path):
    text = ("program: train.py\nmethod: grid\nparameters:\n" + TINY_PARAMS.replace("400", "1200")
            + '  policy_dims: {value: "c8"}\n  seed: {values: [0, 1, 2]}\n')
    path = write(tmp_path, text)
    store = tmp_path / "store"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), str(path), "--workers=1", f"--save_dir={store}",
                             "--sweep_id=kill", "--quiet"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (store / "kill-001" / "checkpoints" / "000002.pt").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its running train.py die together
    proc.wait()
    first_before = tree_digest(store / "kill-000")
    assert json.loads((store / "kill-000" / "run.json").read_text())["status"] == "finished"
    assert json.loads((store / "kill-001" / "run.json").read_text())["status"] == "running"
    assert not (store / "kill-002").exists()
    result = run_cli("sweep.py", "--resume=kill", f"--save_dir={store}", "--workers=2", "--quiet", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in result.stdout
    assert tree_digest(store / "kill-000") == first_before  # finished run untouched
    runs = _runs(store, "kill")
    assert [r["status"] for r in runs] == ["finished"] * 3
    logs = store / "_sweeps" / "kill" / "logs"
    assert "--run_id=kill-001" in (logs / "kill-001.1.log").read_text()  # the killed attempt's log, kept whole
    assert "--resume=kill-001" in (logs / "kill-001.2.log").read_text()  # the resume's own log
    assert not (logs / "kill-000.2.log").exists()  # a finished run is skipped: no new attempt


@pytest.mark.slow
def test_one_failing_run_does_not_stop_the_others(tmp_path):
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n" + TINY_PARAMS.replace("400", "200")
                 + '  policy_dims: {values: ["c4", "c0"]}\n')
    store = tmp_path / "store"
    result = run_cli("sweep.py", str(path), "--workers=2", f"--save_dir={store}", "--sweep_id=f", "--quiet",
                     timeout=300)
    assert result.returncode == 1
    assert "f-001" in result.stderr and "f-001.1.log" in result.stderr
    assert _runs(store, "f")[0]["status"] == "finished"
    assert "--policy_dims" in (store / "_sweeps" / "f" / "logs" / "f-001.1.log").read_text()


@pytest.mark.slow
def test_two_config_sweep_is_trained_and_evaluated_end_to_end(tmp_path):
    import csv
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n" + TINY_PARAMS
                 + '  policy_dims: {values: ["c4", "c8"]}\n')
    store, results = tmp_path / "store", tmp_path / "results"
    trained = run_cli("sweep.py", str(path), "--workers=2", f"--save_dir={store}", "--sweep_id=e2e", "--quiet",
                      timeout=600)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "evaluate.py --sweep_id=e2e" in trained.stdout
    evaluated = run_cli("evaluate.py", "--sweep_id=e2e", f"--checkpoints_dir={store}", f"--results_dir={results}",
                        "--quiet", timeout=600)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    with open(results / "e2e" / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["run_id"] for r in rows) == ["e2e-000", "e2e-001"]
    assert sorted(int(r["n"]) for r in rows) == [4, 8]
    for run_id in ("e2e-000", "e2e-001"):
        with open(results / "e2e" / run_id / "history.csv", newline="") as fh:
            history = list(csv.DictReader(fh))
        assert [int(r["iteration"]) for r in history] == [0, 1, 2]
        # every count equals the independent reference's on the same states (best.pt's fixed episode)
        fixed = load_npz(store / run_id / "trajectories" / "best_deterministic_seed0.npz")["states"]
        for row in history:
            policy = load_checkpoint(store / run_id / "checkpoints" / f"{int(row['iteration']):06d}.pt")
            layers = [(W.numpy(), b.numpy()) for W, b in policy.hidden_layers]
            ref = path_pieces_ref(layers, policy.normalize(fixed))
            assert int(row["num_regions_deterministic_fixed"]) == ref["num_regions"]
            assert int(row["num_transitions_deterministic_fixed"]) == ref["num_transitions"]


@pytest.mark.slow
def test_relative_save_dir_is_taken_from_the_callers_directory(tmp_path):
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n" + TINY_PARAMS.replace("400", "200")
                 + '  policy_dims: {value: "c4"}\n')
    result = run_cli("sweep.py", str(path), "--save_dir=store", "--sweep_id=rel", "--quiet", cwd=tmp_path,
                     timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((tmp_path / "store" / "rel-000" / "run.json").read_text())["status"] == "finished"
    assert not (ROOT / "store").exists()
    again = run_cli("sweep.py", "--resume=rel", "--save_dir=store", "--quiet", cwd=tmp_path, timeout=300)
    assert again.returncode == 0 and "skipped" in again.stdout


def test_train_accepts_what_a_wandb_agent_passes(tmp_path, monkeypatch):
    """wandb agents run `train.py --key=value ...` with WANDB_SWEEP_ID / WANDB_RUN_ID set; booleans come as =True."""
    args = ["--env=Car1DEnv-v1", "--total_timesteps=200", "--nsteps=100", "--n_envs=2", "--batch_size=50",
            "--n_epochs=1", "--policy_dims=c4", "--value_dims=c4", "--eval_episodes=1", "--norm_warmup_steps=20",
            "--quiet=True", "--debug=False", "--learning_rate=0.0003", "--seed=1"]
    monkeypatch.setenv("WANDB_SWEEP_ID", "wsweep1")
    monkeypatch.setenv("WANDB_RUN_ID", "agentrun1")
    assert train.main([*args, f"--save_dir={tmp_path}"]) == 0  # no --run_id: the agent's WANDB_RUN_ID names it
    info = json.loads((tmp_path / "agentrun1" / "run.json").read_text())
    assert info["sweep_id"] == "wsweep1" and info["wandb_sweep_id"] == "wsweep1"
    assert info["flags"]["quiet"] is True and info["flags"]["debug"] is False


@pytest.mark.parametrize("with_process", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_sweep_being_run_refuses_a_second_process_before_writing_anything(tmp_path, with_process):
    """Issue 10, item 5: one writer per sweep. The test holds the sweep as a running sweep.py would (open_sweep);
    a second sweep.py of it, --resume or new with the same id, is one line and exit 2 and changes nothing."""
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n" + TINY_PARAMS
                 + '  policy_dims: {values: ["c4", "c8"]}\n')
    store = tmp_path / "store"
    held = SweepSettings(file=str(path), sweep_id="held", save_dir=str(store))
    with open_sweep(held) as record:
        assert record.run_ids == ["held-000", "held-001"] and is_locked(store / "_sweeps" / "held" / ".lock")
        before = tree_digest(store)
        for argv in (["--resume=held", f"--save_dir={store}"], [str(path), "--sweep_id=held", f"--save_dir={store}"]):
            assert_user_error(sweep.main, argv, "sweep held is being run by another process", "--resume=held")
            if with_process:
                assert_one_line_error(run_cli("sweep.py", *argv, "--quiet"), "being run by another process")
        assert tree_digest(store) == before
    assert not is_locked(store / "_sweeps" / "held" / ".lock")  # released with the block
    assert json.loads((store / "_sweeps" / "held" / "sweep.json").read_text())["run_ids"] == ["held-000", "held-001"]
    assert_user_error(sweep.main, [str(path), "--sweep_id=held", f"--save_dir={store}"], "already exists",
                      "--resume=held")


def test_preparing_a_new_sweep_writes_nothing(tmp_path):
    path = write(tmp_path, "program: train.py\nparameters:\n" + TINY_PARAMS)
    record = prepare_sweep(SweepSettings(file=str(path), sweep_id="fresh", save_dir=str(tmp_path / "store")))
    assert record.sweep_id == "fresh" and record.run_ids == ["fresh-000"]
    assert not (tmp_path / "store").exists()


def test_each_attempt_of_a_run_gets_a_new_numbered_log(tmp_path):
    logs = tmp_path / "logs"
    assert attempt_logs(logs, "s-000") == [] and next_attempt_log(logs, "s-000") == logs / "s-000.1.log"
    logs.mkdir()
    for name in ("s-000.1.log", "s-000.2.log", "s-000.10.log", "s-000.log", "s-0001.3.log", "s-001.7.log", "s-000.x.log"):
        (logs / name).write_text("")
    assert [p.name for p in attempt_logs(logs, "s-000")] == ["s-000.1.log", "s-000.2.log", "s-000.10.log"]
    assert next_attempt_log(logs, "s-000") == logs / "s-000.11.log"
    assert next_attempt_log(logs, "s-002") == logs / "s-002.1.log"


@pytest.mark.slow
def test_a_resumed_sweep_logs_a_new_attempt_and_keeps_the_old_log(tmp_path):
    """The run fails at validation (c0 is no width) on both attempts: each attempt has its own whole log."""
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n" + TINY_PARAMS
                 + '  policy_dims: {value: "c0"}\n')
    store = tmp_path / "store"
    first = run_cli("sweep.py", str(path), f"--save_dir={store}", "--sweep_id=att", "--quiet", timeout=300)
    assert first.returncode == 1 and "att-000.1.log" in first.stderr
    logs = store / "_sweeps" / "att" / "logs"
    first_log = (logs / "att-000.1.log").read_bytes()
    again = run_cli("sweep.py", "--resume=att", f"--save_dir={store}", "--quiet", timeout=300)
    assert again.returncode == 1 and "att-000.2.log" in again.stderr
    assert sorted(p.name for p in logs.iterdir()) == ["att-000.1.log", "att-000.2.log"]
    assert (logs / "att-000.1.log").read_bytes() == first_log
    for log in logs.iterdir():
        text = log.read_text()
        assert text.count("\n$ ") == 1 and "--policy_dims" in text and "error: " in text


def test_a_sweep_folder_a_killed_process_left_empty_does_not_take_the_id(tmp_path):
    path = write(tmp_path, "program: train.py\nparameters:\n" + TINY_PARAMS)
    store = tmp_path / "store"
    (store / "_sweeps" / "s1" / "logs").mkdir(parents=True)  # killed between mkdir and writing sweep.json
    (store / "_sweeps" / "s1" / ".lock").touch()
    with open_sweep(SweepSettings(file=str(path), sweep_id="s1", save_dir=str(store))) as record:
        assert record.run_ids == ["s1-000"]
    assert json.loads((store / "_sweeps" / "s1" / "sweep.json").read_text())["sweep_id"] == "s1"
    (store / "_sweeps" / "s2" / "logs").mkdir(parents=True)
    (store / "_sweeps" / "s2" / "logs" / "s2-000.1.log").write_text("a log of an attempt")
    assert_user_error(sweep.main, [str(path), "--sweep_id=s2", f"--save_dir={store}"], "already exists")


def test_count_is_for_random_sweeps_and_a_grid_refuses_it(tmp_path):
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n  seed: {values: [1, 2]}\n")
    assert_user_error(sweep.main, [str(path), "--count=5", "--dry_run"], "--count=5", "grid", "method: random")
    random = write(tmp_path, "program: train.py\nmethod: random\nparameters:\n  seed: {values: [1, 2, 3]}\n",
                   name="random.yaml")
    _, configs = sweep_configurations(SweepSettings(file=str(random)))
    assert len(configs) == 10  # no --count and no run_cap: the documented default


def test_a_resumed_sweep_keeps_the_files_parameter_order(tmp_path):
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n  seed: {values: [1]}\n"
                           "  policy_dims: {values: [c4]}\n  env: {value: Car1DEnv-v1}\n")
    store = tmp_path / "store"
    with open_sweep(SweepSettings(file=str(path), sweep_id="o", save_dir=str(store))) as record:
        assert list(record.configs[0]) == ["seed", "policy_dims", "env"]
    reloaded = prepare_sweep(SweepSettings(resume="o", save_dir=str(store)))
    assert list(reloaded.configs[0]) == ["seed", "policy_dims", "env"]


def test_a_run_stopped_by_ctrl_c_is_interrupted_not_failed(tmp_path, monkeypatch):
    import utils.jobs.sweep as sweep_job

    path = write(tmp_path, "program: train.py\nparameters:\n" + TINY_PARAMS)
    store = tmp_path / "store"
    settings = SweepSettings(file=str(path), sweep_id="c", save_dir=str(store))
    monkeypatch.setattr(sweep_job.subprocess, "call", lambda *args, **kwargs: 130)  # train.py after Ctrl-C
    seen = []
    with open_sweep(settings) as record:
        (outcome,) = sweep_job.run_sweep(record, settings, lambda o, counts: seen.append(dict(counts)))
    assert outcome.status == "interrupted" and seen[-1]["failed"] == 0 and seen[-1]["interrupted"] == 1


def test_a_started_run_without_checkpoints_is_resumed_not_deleted(tmp_path):
    path = write(tmp_path, "program: train.py\nparameters:\n" + TINY_PARAMS)
    store = tmp_path / "store"
    with open_sweep(SweepSettings(file=str(path), sweep_id="e", save_dir=str(store))) as record:
        run = store / record.run_ids[0]
        (run / "checkpoints").mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({  # started (killed before checkpoint 0)
            "run_id": record.run_ids[0], "env_id": "Car1DEnv-v1", "obs_dim": 2, "config": {"policy_dims": [4]},
            "status": "running"}))
        command = train_command(record, 0, store)
    assert f"--resume={record.run_ids[0]}" in command and run.is_dir()


def test_dry_run_of_a_resume_lists_each_runs_state_and_changes_nothing(tmp_path, capsys):
    path = write(tmp_path, "program: train.py\nmethod: grid\nparameters:\n  seed: {values: [1, 2]}\n")
    store = tmp_path / "store"
    with open_sweep(SweepSettings(file=str(path), sweep_id="d", save_dir=str(store))):
        pass
    before = tree_digest(store)
    assert sweep.main(["--resume=d", f"--save_dir={store}", "--dry_run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["  0 d-000 missing   --seed=1", "  1 d-001 missing   --seed=2"]
    assert tree_digest(store) == before
