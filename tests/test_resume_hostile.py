"""--resume verifies before it writes (issue 10, item 2): it continues from the newest checkpoint that belongs to
the run, refuses (one line, nothing written) when it would overwrite a file the run did not write, leaves older
foreign files alone with one notice, truncates the logs only after the checkpoint loaded, and starts a run that
died before its first checkpoint again from the beginning, with the same result as an uninterrupted run."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import train
import utils.jobs.train as train_job
import utils.jobs.train_loop as train_loop
from models.checkpoint import config_digest, read_checkpoint, save_checkpoint
from tests.helpers import (TINY_CAR1D, assert_one_line_error, assert_user_error, run_cli, train_run,
                           tree_digest)
from tests.test_pinned_digest import tensor_digest
from utils.flags import parse_settings
from utils.jobs.train import prepare_run, train as train_planned
from utils.runs.store import create_run, write_run_info
from utils.settings import TrainSettings

NO_WANDB = {"WANDB_MODE": "disabled"}
TRAINING_STATE = ("policy", "value", "normalizer", "optimizer", "obs_norm")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    """Finished tiny Car1D runs (2 iterations, checkpoints 0, 1, 2): `r`, which the tests kill and resume,
    `other` with the same architecture and another seed, and `wide` with wider policy layers."""
    root = tmp_path_factory.mktemp("reference")
    return {"r": train_run(root / "full", "r", *TINY_CAR1D),
            "other": train_run(root / "foreign", "other", *TINY_CAR1D, "--seed=5"),
            "wide": train_run(root / "foreign", "wide", *TINY_CAR1D, "--policy_dims=c16,16",
                              "--total_timesteps=200")}


def killed_copy(finished: Path, save_dir: Path, last_checkpoint: int) -> Path:
    """A copy of a finished run as a kill after checkpoint `last_checkpoint` leaves it: later checkpoints gone,
    status running; the logs and best.pt keep what the later iterations wrote, as after a kill between writing
    an iteration's metrics (and best.pt) and its checkpoint."""
    run = save_dir / finished.name
    shutil.copytree(finished, run)
    for path in (run / "checkpoints").iterdir():
        if int(path.stem) > last_checkpoint:
            path.unlink()
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))
    return run


def resume(run: Path) -> str:
    """Resume `run` with train.py's main in this process; returns what it printed on stderr (the notices)."""
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        assert train.main(["--resume=" + run.name, f"--save_dir={run.parent}", "--quiet"]) == 0
    return stderr.getvalue()


def refuse_resume(run: Path, *needles: str) -> str:
    """Resuming `run` fails with one UserError line containing every needle and changes no file of the store."""
    before = tree_digest(run.parent)
    message = assert_user_error(train.main, ["--resume=" + run.name, f"--save_dir={run.parent}", "--quiet"], *needles)
    assert tree_digest(run.parent) == before
    return message


def training_digest(path: Path) -> str:
    """A digest of the training state tensors of a checkpoint (run id and config digest left out)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return tensor_digest({key: state[key] for key in TRAINING_STATE})


def assert_same_training(run: Path, uninterrupted: Path, checkpoints=("000000.pt", "000001.pt", "000002.pt")):
    """Byte-identical metrics.jsonl and identical tensors in the named checkpoints and best.pt; run.json finished."""
    assert (run / "metrics.jsonl").read_bytes() == (uninterrupted / "metrics.jsonl").read_bytes()
    for name in checkpoints:
        assert training_digest(run / "checkpoints" / name) == training_digest(uninterrupted / "checkpoints" / name)
    assert training_digest(run / "best.pt") == training_digest(uninterrupted / "best.pt")
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def settings(*flags: str) -> TrainSettings:
    return parse_settings(TrainSettings, [*TINY_CAR1D, *flags], "train.py", "")


def test_every_checkpoint_carries_its_run_id_and_config_digest(reference):
    run = reference["r"]
    config = json.loads((run / "run.json").read_text())["config"]
    for path in [*sorted((run / "checkpoints").iterdir()), run / "best.pt"]:
        state = read_checkpoint(path)
        assert state["run_id"] == "r" and state["config_digest"] == config_digest(config), path.name
    assert int(read_checkpoint(run / "checkpoints" / "000002.pt")["iteration"]) == 2
    # the device may change on resume, anything else makes another run
    assert config_digest({**config, "device": "cuda:1"}) == config_digest(config)
    assert config_digest({**config, "seed": config["seed"] + 1}) != config_digest(config)
    assert config_digest({**config, "policy_dims": [8, 8]}) == config_digest({**config, "policy_dims": (8, 8)})


def test_a_killed_run_resumes_and_ends_as_if_never_interrupted(reference, tmp_path):
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    assert resume(run) == ""  # all its files are its own: no notice
    assert_same_training(run, reference["r"])


def test_foreign_checkpoint_under_the_next_iterations_name_is_refused(reference, tmp_path):
    """The reported bug: it used to continue from the foreign file and overwrite the run's own files."""
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    shutil.copy(reference["other"] / "checkpoints" / "000002.pt", run / "checkpoints" / "000002.pt")
    refuse_resume(run, "checkpoints/000002.pt (run other)", "checkpoints/000001.pt", f"move it out of {run}",
                  "resume again")
    (run / "checkpoints" / "000002.pt").unlink()  # doing what the message says makes the resume work
    resume(run)
    assert_same_training(run, reference["r"])


def test_foreign_checkpoint_older_than_the_newest_own_one_is_named_once_and_left_alone(reference, tmp_path):
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    foreign = run / "checkpoints" / "000000.pt"
    shutil.copy(reference["other"] / "checkpoints" / "000000.pt", foreign)
    foreign_bytes = foreign.read_bytes()
    notices = resume(run).splitlines()
    assert notices == ["notice: ignoring checkpoints/000000.pt (run other), which does not belong to run r; "
                       "it is left as it is"]
    assert foreign.read_bytes() == foreign_bytes
    assert_same_training(run, reference["r"], checkpoints=("000001.pt", "000002.pt"))


def test_several_older_foreign_checkpoints_share_one_notice(reference, tmp_path):
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=2)
    (run / "checkpoints" / "000000.pt").write_bytes(b"not a checkpoint")
    shutil.copy(reference["other"] / "checkpoints" / "000001.pt", run / "checkpoints" / "000001.pt")
    notices = []
    plan = prepare_run(settings("--resume=r", f"--save_dir={tmp_path}"), NO_WANDB)
    assert plan.resume.iteration == 2 and [i for i, _ in plan.resume.own_checkpoints] == [2]
    train_planned(plan, notify=notices.append)
    assert notices == ["notice: ignoring 2 checkpoints that do not belong to run r: 000000.pt (unreadable), "
                       "000001.pt (run other); they are left as they are"]
    assert (run / "checkpoints" / "000000.pt").read_bytes() == b"not a checkpoint"


def test_checkpoint_of_other_dims_is_refused_before_any_file_changes(reference, tmp_path):
    """The reported bug: it used to truncate metrics.jsonl, crash with a traceback and mark the run failed."""
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    shutil.copy(reference["wide"] / "checkpoints" / "000001.pt", run / "checkpoints" / "000002.pt")
    refuse_resume(run, "checkpoints/000002.pt (run wide)")
    assert json.loads((run / "run.json").read_text())["status"] == "running"


def test_checkpoint_whose_tensors_do_not_fit_the_runs_networks_does_not_belong(reference, tmp_path):
    """Run id and config digest are the run's own, the tensors are not: found while planning, not by a crash."""
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=2)
    state = read_checkpoint(run / "checkpoints" / "000002.pt")
    state["policy"] = read_checkpoint(reference["wide"] / "checkpoints" / "000001.pt")["policy"]
    save_checkpoint(run / "checkpoints" / "000002.pt", state)
    refuse_resume(run, "checkpoints/000002.pt (other policy shapes)", "resumed from checkpoints/000001.pt")


def test_checkpoint_holding_another_iteration_than_its_name_does_not_belong(reference, tmp_path):
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    shutil.copy(run / "checkpoints" / "000000.pt", run / "checkpoints" / "000002.pt")
    refuse_resume(run, "checkpoints/000002.pt (holds iteration 0)")


def test_damaged_newest_checkpoint_is_refused_not_skipped(reference, tmp_path):
    """Every file of a run is written atomically, so a torn one was not left by the run: it is not overwritten."""
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=2)
    newest = run / "checkpoints" / "000002.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    refuse_resume(run, "checkpoints/000002.pt (unreadable)", "resumed from checkpoints/000001.pt")


def test_foreign_best_checkpoint_is_refused(reference, tmp_path):
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    shutil.copy(reference["other"] / "best.pt", run / "best.pt")
    refuse_resume(run, "best.pt (run other)", "move it out")


def test_checkpoints_without_run_id_are_judged_by_their_config(reference, tmp_path):
    """Checkpoints written before they carried a run id belong when their config is the run's."""
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    for path in (run / "checkpoints").iterdir():
        state = read_checkpoint(path)
        del state["run_id"], state["config_digest"]
        save_checkpoint(path, state)
    plan = prepare_run(settings("--resume=r", f"--save_dir={tmp_path}"), NO_WANDB)
    assert plan.resume.iteration == 1 and plan.notices == ()
    newest = read_checkpoint(run / "checkpoints" / "000001.pt")
    newest["config"] = {**newest["config"], "seed": 99}
    save_checkpoint(run / "checkpoints" / "000001.pt", newest)
    refuse_resume(run, "checkpoints/000001.pt (another config)")


def test_logs_are_truncated_only_after_the_checkpoint_loaded(reference, tmp_path, monkeypatch):
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    logs = {name: (run / name).read_bytes() for name in ("metrics.jsonl", "timing.jsonl")}

    def load_fails(self, state):
        raise RuntimeError("load failed")

    monkeypatch.setattr(train_job.Trainer, "load_state_dict", load_fails)
    with pytest.raises(RuntimeError, match="load failed"):
        train.main(["--resume=r", f"--save_dir={tmp_path}", "--quiet"])
    assert {name: (run / name).read_bytes() for name in logs} == logs
    assert len(logs["metrics.jsonl"].splitlines()) == 3  # lines 0, 1, 2: there was something to truncate


def _start_and_die_before_checkpoint_0(save_dir: Path, *flags: str, monkeypatch, crash: bool) -> Path:
    """A run killed before its first checkpoint. crash=False: as a kill -9 right after train() created the run
    directory and run.json (status running); crash=True: training raised while writing the first checkpoint
    (status failed, metrics.jsonl already holds iteration 0)."""
    plan = prepare_run(settings(f"--save_dir={save_dir}", "--run_id=r", *flags), NO_WANDB)
    if not crash:
        write_run_info(create_run(plan.run_dir.parent, plan.run_id), plan.run_info)
        return plan.run_dir

    def save_fails(path, payload):
        raise RuntimeError("disk went away")

    with monkeypatch.context() as patch:
        patch.setattr(train_loop, "save_checkpoint", save_fails)
        with pytest.raises(RuntimeError, match="disk went away"):
            train_planned(plan)
    assert [json.loads(line)["iteration"] for line in (plan.run_dir / "metrics.jsonl").read_text().splitlines()] == [0]
    assert json.loads((plan.run_dir / "run.json").read_text())["status"] == "failed"
    return plan.run_dir


@pytest.mark.parametrize("crash", [False, True], ids=["killed", "failed"])
def test_a_run_that_died_before_checkpoint_0_starts_again_with_the_same_id(reference, tmp_path, monkeypatch, crash):
    run = _start_and_die_before_checkpoint_0(tmp_path, monkeypatch=monkeypatch, crash=crash)
    assert not list((run / "checkpoints").iterdir())
    assert resume(run).splitlines() == ["notice: run r has no checkpoint yet; starting it again from the beginning"]
    assert_same_training(run, reference["r"])
    assert (run / "timing.jsonl").is_file()


@pytest.mark.slow
def test_a_restarted_run_loads_its_pretrained_weights_and_statistics_again(reference, tmp_path, monkeypatch):
    start = [f"--pretrained_path={reference['other'] / 'best.pt'}", f"--stats_path={reference['other'] / 'best.pt'}"]
    uninterrupted = train_run(tmp_path / "uninterrupted", "r", *TINY_CAR1D, *start)
    run = _start_and_die_before_checkpoint_0(tmp_path / "killed", *start, monkeypatch=monkeypatch, crash=False)
    resume(run)
    assert_same_training(run, uninterrupted)


def test_a_restart_whose_pretrained_checkpoint_is_gone_is_refused(reference, tmp_path, monkeypatch):
    pretrained = tmp_path / "pretrained.pt"
    shutil.copy(reference["other"] / "best.pt", pretrained)
    run = _start_and_die_before_checkpoint_0(tmp_path / "store", f"--pretrained_path={pretrained}",
                                             monkeypatch=monkeypatch, crash=False)
    pretrained.unlink()
    refuse_resume(run, f"--pretrained_path={pretrained}", "not there", "put that file back")


def test_a_run_folder_that_cannot_be_written_is_refused_while_planning(reference, tmp_path, monkeypatch):
    """os.access is faked for one path so this runs as root too (root may write anything)."""
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    real_access = os.access
    denied = run / "metrics.jsonl"
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (Path(path) != denied or not mode & os.W_OK)
                        and real_access(path, mode, **kw))
    refuse_resume(run, str(denied), "not writable", "chmod u+rw")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
@pytest.mark.parametrize("target", ["", "checkpoints", "metrics.jsonl"])
def test_a_run_folder_that_cannot_be_written_ends_with_one_line(reference, tmp_path, target):
    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    path = run / target
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        before = tree_digest(tmp_path)
        result = run_cli("train.py", "--resume=r", f"--save_dir={tmp_path}", "--quiet")
        assert_one_line_error(result, f"{path} is not writable", "resume again")
        assert tree_digest(tmp_path) == before
    finally:
        path.chmod(mode)


@pytest.mark.slow
def test_refusals_through_the_real_command_line(reference, tmp_path):
    """The issue's two reports as a user meets them: exit code 2, one line, no traceback, nothing changed."""
    for foreign in (reference["other"] / "checkpoints" / "000002.pt", reference["wide"] / "checkpoints" / "000001.pt"):
        save_dir = tmp_path / foreign.parents[1].name
        run = killed_copy(reference["r"], save_dir, last_checkpoint=1)
        shutil.copy(foreign, run / "checkpoints" / "000002.pt")
        before = tree_digest(save_dir)
        result = run_cli("train.py", "--resume=r", f"--save_dir={save_dir}", "--quiet")
        assert_one_line_error(result, f"checkpoints/000002.pt (run {foreign.parents[1].name})", "move it out")
        assert tree_digest(save_dir) == before


def test_a_run_another_process_trains_is_busy_before_anything_else_is_said(reference, tmp_path):
    from utils.runs.store import RunPaths, run_lock

    run = killed_copy(reference["r"], tmp_path, last_checkpoint=1)
    (run / "metrics.jsonl").write_bytes(b"\xff\xfe half-written by the other process\n{}\n")
    with run_lock(RunPaths(run)):
        refuse_resume(run, "being trained by another process")


def test_a_folder_a_killed_process_left_empty_does_not_take_the_id(tmp_path):
    (tmp_path / "x" / "checkpoints").mkdir(parents=True)  # killed between making the folder and writing run.json
    (tmp_path / "x" / ".lock").touch()
    run = train_run(tmp_path, "x", *TINY_CAR1D)
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    (tmp_path / "y" / "checkpoints").mkdir(parents=True)
    (tmp_path / "y" / "checkpoints" / "mine.txt").write_text("something a user put there")
    before = tree_digest(tmp_path / "y")
    assert_user_error(train.main, [*TINY_CAR1D, f"--save_dir={tmp_path}", "--run_id=y"], "already exists")
    assert tree_digest(tmp_path / "y") == before


def test_pretrained_weights_that_are_not_finite_are_refused_before_the_run_exists(reference, tmp_path):
    state = read_checkpoint(reference["r"] / "checkpoints" / "000001.pt")
    key = next(k for k in state["policy"] if k.endswith("weight"))
    state["policy"][key] = torch.full_like(state["policy"][key], float("nan"))
    bad = tmp_path / "nan.pt"
    save_checkpoint(bad, {k: v for k, v in state.items() if k != "format"})
    assert_user_error(train.main, [*TINY_CAR1D, f"--save_dir={tmp_path / 'store'}", f"--pretrained_path={bad}"],
                      "non-finite weights", key)
    assert not (tmp_path / "store").exists()
