"""train.py end to end: bad input, determinism, kill-and-resume, learning, and the paper's own command.

Quick tests call train.main(argv) in this process; the slow ones start real processes (exit codes, kills, wandb)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train
from tests.helpers import (ROOT, TINY_CAR1D, assert_one_line_error, assert_user_error, run_cli, train_run,
                           tree_digest)

TINY = TINY_CAR1D


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished tiny Car1D run to point --pretrained_path/--stats_path/--resume at."""
    return train_run(tmp_path_factory.mktemp("store"), "base", *TINY)


def test_tiny_run_writes_the_run_store(base_run):
    info = json.loads((base_run / "run.json").read_text())
    assert info["status"] == "finished" and info["env_id"] == "Car1DEnv-v1" and info["obs_dim"] == 2
    assert info["config"]["policy_dims"] == [8, 8] and "torch" in info["packages"]
    assert sorted(p.name for p in (base_run / "checkpoints").iterdir()) == ["000000.pt", "000001.pt", "000002.pt"]
    assert (base_run / "best.pt").is_file()
    lines = [json.loads(line) for line in (base_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == [0, 1, 2]
    assert lines[-1]["timesteps"] == 400 and "eval_return" in lines[-1] and "approx_kl" in lines[-1]
    assert not list(base_run.rglob("*.tmp"))


def _bad_input_cases(base: Path, tmp: Path) -> list[tuple[list[str], tuple[str, ...]]]:
    truncated = tmp / "truncated.pt"
    data = (base / "best.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    not_ckpt = tmp / "notes.pt"
    not_ckpt.write_text("hello")
    blocker = tmp / "a_file"
    blocker.write_text("x")
    return [
        (["--env=HalfCheeta-v5"], ("unknown env id", "HalfCheetah-v5")),
        (["--policy_dims=c16,,x"], ("--policy_dims",)),
        (["--policy_dims=c0"], ("--policy_dims",)),
        (["--value_dims="], ("--value_dims",)),
        (["--total_timesteps=0"], ("--total_timesteps", "positive")),
        (["--nsteps=-5"], ("--nsteps", "positive")),
        (["--batch_size=0"], ("--batch_size", "positive")),
        (["--n_epochs=0"], ("--n_epochs", "positive")),
        (["--batch_size=5000"], ("--batch_size", "larger than a rollout")),
        (["--device=cuda"], ("cuda", "--device=cpu")),
        (["--env=CarRacing-v3"], ("cannot create CarRacing-v3",)),
        (["--learning_rate=-1"], ("--learning_rate", "positive")),
        (["--learning_rate=nan"], ("--learning_rate",)),
        ([f"--save_dir={blocker}/sub"], ("--save_dir",)),
        (["--run_id=base"], ("already exists", "--resume")),
        (["--resume=nosuchrun"], ("no run 'nosuchrun'", "base")),
        ([f"--pretrained_path={tmp}/missing.pt"], ("not found",)),
        ([f"--pretrained_path={truncated}"], ("truncated", "truncated.pt")),
        ([f"--pretrained_path={not_ckpt}"], ("notes.pt",)),
        ([f"--pretrained_path={base}/best.pt", "--policy_dims=c16,16"], ("policy dims", "--policy_dims")),
        ([f"--pretrained_path={base}/best.pt", "--env=Car1DEnv-v0", "--policy_dims=c8,8"], ("Car1DEnv-v1",)),
        ([f"--stats_path={base}/best.pt", "--env=MountainCarContinuous-v0"], ("same env",)),
        ([f"--stats_path={truncated}"], ("truncated",)),
    ]


def _bad_input_argv(extra: list[str], save_dir: Path) -> list[str]:
    args = [a for a in TINY if not any(a.startswith(e.split("=")[0] + "=") for e in extra)] + extra
    return args + [f"--save_dir={save_dir}" if not any("--save_dir" in e for e in extra) else "--quiet"]


def test_bad_inputs_fail_with_one_line_and_touch_nothing(base_run, tmp_path):
    save_dir = base_run.parent
    before = tree_digest(save_dir)
    for extra, needles in _bad_input_cases(base_run, tmp_path):
        assert_user_error(train.main, _bad_input_argv(extra, save_dir), *needles)
        assert tree_digest(save_dir) == before, extra


@pytest.mark.slow
def test_bad_input_through_the_real_command_line(base_run, tmp_path):
    """The real process: exit code 2, one `error:` line on stderr, no traceback, nothing written (a flag error,
    an env that cannot be built, an unreadable checkpoint; the in-process test above covers every case)."""
    save_dir = base_run.parent
    before = tree_digest(save_dir)
    chosen = ("--policy_dims=c16,,x", "--env=HalfCheeta-v5", "--env=CarRacing-v3", f"--pretrained_path={tmp_path}")
    cases = [(extra, needles) for extra, needles in _bad_input_cases(base_run, tmp_path)
             if extra[0].startswith(chosen)]
    assert len(cases) >= 4
    for extra, needles in cases:
        assert_one_line_error(run_cli("train.py", *_bad_input_argv(extra, save_dir)), *needles)
        assert tree_digest(save_dir) == before, extra


def test_pretrained_weights_and_stats_start_a_new_run(base_run, tmp_path):
    best = base_run / "best.pt"
    train_run(tmp_path, "child", *TINY, f"--pretrained_path={best}", f"--stats_path={best}", "--seed=9")
    parent = torch.load(best, weights_only=True)
    child = torch.load(tmp_path / "child" / "checkpoints" / "000000.pt", weights_only=True)
    for name, tensor in parent["policy"].items():
        assert torch.equal(child["policy"][name], tensor), name
    assert torch.equal(child["normalizer"]["obs_mean"], parent["normalizer"]["obs_mean"])
    assert child["iteration"] == 0 and json.loads((tmp_path / "child" / "run.json").read_text())["status"] == "finished"


def test_resume_of_a_finished_run_changes_nothing(base_run, capsys):
    before = tree_digest(base_run)
    assert train.main(["--resume=base", f"--save_dir={base_run.parent}", "--quiet"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert tree_digest(base_run) == before


@pytest.mark.parametrize("with_process", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_run_being_trained_cannot_be_resumed_twice(base_run, with_process):
    from utils.runs.store import RunPaths, is_run_locked, run_lock
    run = RunPaths(base_run)
    info = (base_run / "run.json").read_text()
    (base_run / "run.json").write_text(info.replace('"status": "finished"', '"status": "running"'))
    try:
        with run_lock(run):  # stands in for another train.py process (flock: another open file conflicts too)
            assert is_run_locked(run)
            assert_user_error(train.main, ["--resume=base", f"--save_dir={base_run.parent}", "--quiet"],
                              "another process")
            if with_process:
                result = run_cli("train.py", "--resume=base", f"--save_dir={base_run.parent}", "--quiet")
                assert_one_line_error(result, "another process")
        assert not is_run_locked(run)
    finally:
        (base_run / "run.json").write_text(info)


def test_invalid_run_id(tmp_path):
    assert_user_error(train.main, [*TINY, f"--save_dir={tmp_path}", "--run_id=../escape"], "--run_id")
    assert not tmp_path.joinpath("escape").exists() and not any(tmp_path.iterdir())


def test_resume_refuses_to_overwrite_a_damaged_checkpoint(base_run, tmp_path):
    broken = tmp_path / "store" / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    info = (base_run / "run.json").read_text().replace('"status": "finished"', '"status": "running"')  # killed
    (broken / "run.json").write_text(info)
    data = (base_run / "checkpoints" / "000000.pt").read_bytes()
    (broken / "checkpoints" / "000000.pt").write_bytes(data[:100])
    before = tree_digest(broken)
    assert_user_error(train.main, ["--resume=broken", f"--save_dir={tmp_path / 'store'}", "--quiet"],
                      "000000.pt (unreadable)", "move it out")
    assert tree_digest(broken) == before


def _tensors_equal(a: Path, b: Path) -> bool:
    sa, sb = (torch.load(p, weights_only=True) for p in (a, b))
    return all(torch.equal(sa[k][n], sb[k][n]) for k in ("policy", "value") for n in sa[k]) \
        and torch.equal(sa["normalizer"]["obs_mean"], sb["normalizer"]["obs_mean"])


def test_same_seed_gives_identical_metrics_and_checkpoints(tmp_path):
    a, b = (train_run(tmp_path / name, "same", *TINY, "--seed=3") for name in ("a", "b"))
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
    for ckpt in (a / "checkpoints").iterdir():
        assert _tensors_equal(ckpt, b / "checkpoints" / ckpt.name)
    other = train_run(tmp_path / "c", "same", *TINY, "--seed=4")
    assert (other / "metrics.jsonl").read_bytes() != (a / "metrics.jsonl").read_bytes()


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
    args = ["--env=Car1DEnv-v1", "--total_timesteps=6000", "--nsteps=250", "--n_envs=2", "--n_epochs=3",
            "--policy_dims=c8,8", "--value_dims=c8", "--eval_episodes=1", "--eval_every=2", "--quiet",
            "--norm_warmup_steps=50", "--run_id=r"]
    full = run_cli("train.py", *args, f"--save_dir={tmp_path / 'full'}")
    assert full.returncode == 0, full.stderr
    store = tmp_path / "killed"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args, f"--save_dir={store}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + 120
    while not (store / "r" / "checkpoints" / "000003.pt").exists():
        assert time.time() < deadline and proc.poll() is None, "run ended before it could be killed"
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.3))  # a random moment: mid-rollout, mid-update or mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in (store / "r" / "checkpoints").iterdir())
    assert "000012.pt" not in done, "the kill came too late to test resume"
    resumed = run_cli("train.py", "--resume=r", f"--save_dir={store}", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    a, b = tmp_path / "full" / "r", store / "r"
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
    assert _tensors_equal(a / "checkpoints" / "000012.pt", b / "checkpoints" / "000012.pt")
    assert _tensors_equal(a / "best.pt", b / "best.pt")
    assert json.loads((b / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_policy_learns_car1d(tmp_path):
    """The toy task is solved (deterministic return > 800, from about 300 at the start) within 100k steps."""
    result = run_cli("train.py", "--env=Car1DEnv-v1", "--total_timesteps=100000", "--nsteps=1000", "--n_envs=2",
                     "--policy_dims=c16,16", "--value_dims=c32,32", "--stop_at_return=800", "--quiet",
                     f"--save_dir={tmp_path}", "--run_id=learn", timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "learn" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["eval_return"] < 500
    assert max(r.get("eval_return", -1e9) for r in lines) > 800


@pytest.mark.slow
def test_paper_command_runs_offline_without_login(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"), WANDB_SILENT="true")
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--device=cpu", "--env=HalfCheetah-v2", "--total_timesteps=2000",
         "--nsteps=1000", "--eval_every=1", "--save_every=1", "--policy_dims=c16,16", "--value_dims=c32,32",
         f"--save_dir={tmp_path / 'checkpoints'}", "--entity=USERNAME", "--project_name=deep_rl_regions"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "HalfCheetah-v5" in result.stderr and "offline" in result.stderr
    (run_dir,) = [p for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["env_requested"] == "HalfCheetah-v2" and info["env_id"] == "HalfCheetah-v5"
    assert info["obs_dim"] == 17 and info["status"] == "finished" and info["wandb"]["mode"] == "offline"
    assert info["wandb"]["id"] == run_dir.name
    assert (run_dir / "best.pt").is_file() and (run_dir / "checkpoints" / "000000.pt").is_file()
    assert list((run_dir / "wandb").glob("offline-run-*"))


def test_inexact_resume_drops_a_best_checkpoint_from_the_abandoned_timeline(tmp_path):
    from models.checkpoint import read_checkpoint, save_checkpoint
    from utils.jobs.train import _forget_abandoned_best
    from tests.test_checkpoint import small_trainer
    from utils.runs.store import create_run
    run = create_run(tmp_path, "r")
    trainer = small_trainer()
    for iteration, value in enumerate([1.0, 5.0, 3.0, 9.0]):
        trainer.iteration, trainer.last_eval_return = iteration, value
        save_checkpoint(run.checkpoint(iteration), trainer.state_dict())
    save_checkpoint(run.best, read_checkpoint(run.checkpoint(3)))  # best from iteration 3
    own = tuple(run.list_checkpoints())
    _forget_abandoned_best(run, resumed_iteration=3, own_checkpoints=own)
    assert read_checkpoint(run.best)["iteration"] == 3  # not ahead of the resume point: kept
    _forget_abandoned_best(run, resumed_iteration=2, own_checkpoints=own)
    assert read_checkpoint(run.best)["iteration"] == 1  # the best of iterations 0..2


def test_diverged_training_fails_with_one_line_and_keeps_the_last_finite_checkpoint(tmp_path, monkeypatch, capsys):
    """Issue 10, item 4: a divergence is exit 1 with one line naming the iteration and the last finite checkpoint,
    status failed in run.json, and no checkpoint, best.pt or metrics line of the diverged iteration."""
    from models.training import Trainer
    from utils.errors import run_cli as run_main

    train_iteration = Trainer.train_iteration

    def third_update_with_an_absurd_learning_rate(self) -> dict:
        if self.iteration == 2:  # --learning_rate allows at most 10; 1e37 sends Adam's first step out of range
            for group in self.optimizer.param_groups:
                group["lr"] = 1e37
        return train_iteration(self)

    monkeypatch.setattr(Trainer, "train_iteration", third_update_with_an_absurd_learning_rate)
    run = tmp_path / "diverged"
    with pytest.raises(SystemExit) as exit_info:
        run_main(train.main, [*TINY, "--total_timesteps=800", f"--save_dir={tmp_path}", "--run_id=diverged"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1 and out == ""
    last = run / "checkpoints" / "000002.pt"
    assert err.startswith("error: training diverged at iteration 3 (") and err.count("\n") == 1, err
    assert f"its last finite checkpoint is {last}; start a new run with a lower --learning_rate than 0.0003" in err
    assert f"--pretrained_path={last}" in err
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and info["error"].startswith("TrainingDiverged: training diverged at iteration 3")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["000000.pt", "000001.pt", "000002.pt"]
    assert [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert torch.load(run / "best.pt", weights_only=True)["iteration"] <= 2
    assert not (run / "error.log").exists()  # a divergence is not a bug: no traceback to keep
