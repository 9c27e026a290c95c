"""What --resume does with the other flags given with it: names the ones it ignores in one notice, extends a run
to a larger --total_timesteps (exactly as if it had been asked for from the start), refuses to shorten one; and
how a run stopped by --stop_at_return says so."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

import train
from tests.helpers import TINY_CAR1D, assert_user_error, train_run, tree_digest
from tests.test_resume_hostile import training_digest
from utils.flags import given_flags
from utils.jobs.train import prepare_run
from utils.settings import TrainSettings


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """`short`: a finished TINY_CAR1D run (2 iterations of 200 steps); `long`: the same flags with 600 steps."""
    root = tmp_path_factory.mktemp("resume_flags")
    return {"short": train_run(root / "a", "r", *TINY_CAR1D),
            "long": train_run(root / "b", "r", *TINY_CAR1D, "--total_timesteps=600")}


def run_main(argv: list[str]) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert train.main(argv) == 0
    return out.getvalue(), err.getvalue()


def test_given_flags_are_the_ones_spelled_out_whatever_their_value():
    assert given_flags(TrainSettings, ["--seed=0", "--n_steps", "5", "--quiet", "--resume=x"]) == \
        {"seed", "nsteps", "quiet", "resume"}
    assert given_flags(TrainSettings, []) == frozenset()


def test_flags_a_resume_cannot_honour_are_named_in_one_notice(runs, tmp_path):
    run = shutil.copytree(runs["short"], tmp_path / "r")
    _, err = run_main(["--resume=r", f"--save_dir={tmp_path}", "--seed=7", "--policy_dims=c64", "--quiet",
                       "--env=Car1DEnv-v1"])  # --env is the run's own value: nothing to say about it
    notices = [line for line in err.splitlines() if "ignored" in line]
    assert len(notices) == 1 and "--policy_dims, --seed" in notices[0] and "--env" not in notices[0]
    assert "already finished" not in err  # the finished run's report goes to stdout; the notice still shows


def test_a_larger_total_timesteps_extends_a_finished_run_exactly(runs, tmp_path):
    run = shutil.copytree(runs["short"], tmp_path / "r")
    out, err = run_main(["--resume=r", f"--save_dir={tmp_path}", "--total_timesteps=600", "--quiet"])
    assert "extending run r from 400 to 600 timesteps" in err and "finished: 3 iterations, 600 timesteps" in out
    long = runs["long"]
    assert (run / "metrics.jsonl").read_bytes() == (long / "metrics.jsonl").read_bytes()
    for name in sorted(p.name for p in (long / "checkpoints").iterdir()):
        assert training_digest(run / "checkpoints" / name) == training_digest(long / "checkpoints" / name), name
    info = json.loads((run / "run.json").read_text())
    assert (info["config"]["total_timesteps"], info["flags"]["total_timesteps"], info["n_iterations"],
            info["status"]) == (600, 600, 3, "finished")


def test_a_run_cannot_be_shortened_and_the_refusal_changes_nothing(runs, tmp_path):
    run = shutil.copytree(runs["long"], tmp_path / "r")
    before = tree_digest(run)
    assert_user_error(train.main, ["--resume=r", f"--save_dir={tmp_path}", "--total_timesteps=400"],
                      "--total_timesteps=400", "600", "extend")
    assert tree_digest(run) == before


def test_without_the_flag_the_default_budget_is_not_a_request(runs, tmp_path):
    run = shutil.copytree(runs["short"], tmp_path / "r")
    plan = prepare_run(TrainSettings(resume="r", save_dir=str(tmp_path)), given={"resume", "save_dir"})
    assert plan.already_finished and plan.config.total_timesteps == 400 and plan.extended_from is None
    # the library API without `given`: a value other than the default counts as asked for
    plan = prepare_run(TrainSettings(resume="r", save_dir=str(tmp_path), total_timesteps=500))
    assert plan.extended_from == 400 and plan.config.total_timesteps == 500 and not plan.already_finished
    assert json.loads((run / "run.json").read_text())["config"]["total_timesteps"] == 400  # planning wrote nothing


def test_a_run_stopped_by_stop_at_return_says_so(tmp_path):
    out, _ = run_main([*TINY_CAR1D, f"--save_dir={tmp_path}", "--run_id=s", "--stop_at_return=-1e9"])
    assert "run s stopped early at iteration 0" in out and "--stop_at_return=-1e+09" in out
    info = json.loads((tmp_path / "s" / "run.json").read_text())
    assert info["status"] == "finished" and info["stopped_early"] is True


def test_the_runs_own_wandb_mode_holds_unless_one_is_given(runs, tmp_path):
    from tests.test_resume_hostile import killed_copy

    run = killed_copy(runs["short"], tmp_path, last_checkpoint=1)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "flags": {**info["flags"], "wandb_mode": "disabled"}}))
    environ = {"WANDB_API_KEY": "x" * 40}  # logged in: the default would be online
    base = TrainSettings(resume="r", save_dir=str(tmp_path))
    assert prepare_run(base, environ, given={"resume", "save_dir"}).wandb.mode == "disabled"
    chosen = prepare_run(TrainSettings(resume="r", save_dir=str(tmp_path), wandb_mode="offline"), environ,
                         given={"resume", "save_dir", "wandb_mode"})
    assert chosen.wandb.mode == "offline"
