"""utils/jobs/train.py: prepare_run validates and resolves everything into a frozen plan and writes nothing;
train follows the plan (early stop by --stop_at_return keeps the stopping policy)."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import utils.jobs.train as train_job
from models.checkpoint import save_checkpoint
from tests.helpers import TINY_CAR1D, tree_digest
from tests.test_checkpoint import small_trainer
from utils.errors import UserError
from utils.flags import parse_settings
from utils.jobs.train import TrainPlan, prepare_run, train
from utils.runs.store import create_run, write_run_info
from utils.settings import TrainSettings

NO_WANDB = {"WANDB_MODE": "disabled"}


def settings(*flags: str) -> TrainSettings:
    """train.py's settings for a tiny Car1D run plus `flags` (later flags win)."""
    return parse_settings(TrainSettings, [*TINY_CAR1D, *flags], "train.py", "")


@pytest.fixture
def store(tmp_path):
    """A run store holding run `r`: killed (status running) after iteration 0, with --stop_at_return=250 recorded,
    and `done`: finished."""
    save_dir = tmp_path / "store"
    trainer = small_trainer()
    for run_id, status in (("r", "running"), ("done", "finished")):
        run = create_run(save_dir, run_id)
        write_run_info(run, {"run_id": run_id, "status": status, "env_id": trainer.cfg.env_id,
                             "obs_dim": trainer.cfg.obs_dim, "config": trainer.cfg.to_dict(),
                             "flags": {"stop_at_return": 250.0, "run_name": "named"},
                             "wandb": {"project": "stored-project", "entity": "stored-entity"}})
        save_checkpoint(run.checkpoint(0), trainer.state_dict())
    trainer.close()
    return save_dir


def _bad_settings(store, tmp_path) -> list[tuple[list[str], tuple[str, ...]]]:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    broken = create_run(store, "broken")  # holds a checkpoint it did not write, which a resume would overwrite
    write_run_info(broken, {**json.loads((store / "r" / "run.json").read_text()), "run_id": "broken",
                            "status": "running"})
    broken.checkpoint(0).write_bytes((store / "r" / "checkpoints" / "000000.pt").read_bytes()[:100])
    cases = [
        (["--env=HalfCheeta-v5"], ("unknown env id",)),
        (["--policy_dims=c16,,x"], ("--policy_dims",)),
        (["--value_dims="], ("--value_dims",)),
        (["--batch_size=5000"], ("--batch_size", "larger than a rollout")),
        (["--learning_rate=nan"], ("--learning_rate",)),
        (["--log_std_init=inf"], ("--log_std_init",)),
        (["--env=CarRacing-v3"], ("cannot create CarRacing-v3",)),
        (["--run_id=../escape"], ("--run_id",)),
        (["--run_id=r"], ("already exists", "--resume=r")),
        ([f"--save_dir={blocker}/sub"], ("--save_dir",)),
        ([f"--pretrained_path={tmp_path}/missing.pt"], ("not found",)),
        ([f"--pretrained_path={store}/r/checkpoints/000000.pt"], ("policy dims",)),  # c8,4 here, c8,8 asked for
        ([f"--stats_path={store}/r/checkpoints/000000.pt", "--env=Car1DEnv-v0"], ("same env",)),
        (["--resume=nosuchrun"], ("no run 'nosuchrun'",)),
        (["--resume=broken"], ("000000.pt (unreadable)", "move it out")),
    ]
    if not torch.cuda.is_available():
        cases += [(["--device=cuda"], ("cuda", "--device=cpu")), (["--resume=r", "--device=cuda"], ("cuda",))]
    return cases


def test_validation_errors_raise_user_error_and_write_nothing(store, tmp_path):
    cases = _bad_settings(store, tmp_path)
    before = tree_digest(tmp_path)
    for flags, needles in cases:
        save_dir = [] if any(f.startswith("--save_dir") for f in flags) else [f"--save_dir={store}"]
        with pytest.raises(UserError) as err:
            prepare_run(settings(*save_dir, *flags), NO_WANDB)
        for needle in needles:
            assert needle.lower() in str(err.value).lower(), (flags, needle, str(err.value))
        assert tree_digest(tmp_path) == before, flags
    assert not (tmp_path / "a_file").is_dir() and not (store.parent / "escape").exists()


def test_a_valid_plan_writes_nothing_and_is_frozen(tmp_path):
    save_dir = tmp_path / "new" / "store"
    plan = prepare_run(settings(f"--save_dir={save_dir}", "--run_id=x", "--n_envs=2"), NO_WANDB)
    assert not (tmp_path / "new").exists()  # not even the run store's directory
    assert plan.run_dir == save_dir / "x" and plan.run_id == "x" and not plan.is_resume
    for frozen, field in ((plan, "run_dir"), (plan.settings, "n_envs"), (plan.config, "n_envs"),
                          (plan.wandb, "mode")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(frozen, field, None)
    assert plan.config.n_steps == plan.settings.nsteps == 100 and plan.config.policy_dims == (8, 8)
    assert plan.run_info["flags"] == dataclasses.asdict(plan.settings)
    assert plan.run_info["config"] == plan.config.to_dict()
    assert plan.resume is None and plan.pretrained_weights is None and plan.initial_statistics is None


def test_prepare_run_does_not_change_the_settings_it_is_given(tmp_path, monkeypatch):
    monkeypatch.setattr(train_job, "available_cpus", lambda: 3)
    given = settings(f"--save_dir={tmp_path}", "--n_envs=2")
    given = dataclasses.replace(given, n_envs=None)
    copy = dataclasses.replace(given)
    plan = prepare_run(given, {"WANDB_SWEEP_ID": "s", "WANDB_RUN_ID": "agent", **NO_WANDB})
    assert given == copy and given.n_envs is None and given.run_id is None
    assert plan.settings.n_envs == 3 and plan.settings.run_id == "agent"


def test_n_envs_defaults_to_the_available_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(train_job, "available_cpus", lambda: 3)
    plan = prepare_run(dataclasses.replace(settings(f"--save_dir={tmp_path}"), n_envs=None), NO_WANDB)
    assert plan.config.n_envs == plan.settings.n_envs == 3
    assert plan.run_info["flags"]["n_envs"] == 3
    explicit = prepare_run(settings(f"--save_dir={tmp_path}", "--n_envs=1"), NO_WANDB)
    assert explicit.config.n_envs == 1


def test_run_id_comes_from_wandb_run_id_only_under_a_wandb_sweep(tmp_path):
    agent = {"WANDB_SWEEP_ID": "wsweep", "WANDB_RUN_ID": "agentrun", **NO_WANDB}
    plan = prepare_run(settings(f"--save_dir={tmp_path}"), agent)
    assert plan.run_id == plan.settings.run_id == "agentrun"
    assert plan.run_info["sweep_id"] == plan.run_info["wandb_sweep_id"] == "wsweep"
    assert prepare_run(settings(f"--save_dir={tmp_path}", "--run_id=mine"), agent).run_id == "mine"
    alone = prepare_run(settings(f"--save_dir={tmp_path}"), {"WANDB_RUN_ID": "agentrun", **NO_WANDB})
    assert alone.run_id != "agentrun" and alone.run_info["sweep_id"] is None
    with pytest.raises(UserError, match="--run_id"):
        prepare_run(settings(f"--save_dir={tmp_path}"), {**agent, "WANDB_RUN_ID": "../bad"})


def test_resume_takes_stop_at_return_and_the_rest_from_the_run(store):
    plan = prepare_run(settings("--resume=r", f"--save_dir={store}", "--n_envs=7"), NO_WANDB,
                       given={"resume", "save_dir", "n_envs"})
    assert plan.is_resume and not plan.already_finished and plan.run_dir == store / "r"
    assert plan.settings.stop_at_return == 250.0  # recorded in run.json
    assert plan.config.policy_dims == (8, 4) and plan.config.n_envs == plan.settings.n_envs == 2  # the run's own
    assert plan.resume.checkpoint["iteration"] == 0
    assert plan.pretrained_weights is None and plan.initial_statistics is None
    assert (plan.wandb.project, plan.wandb.entity, plan.wandb.name) == ("stored-project", "stored-entity", "named")
    override = prepare_run(settings("--resume=r", f"--save_dir={store}", "--stop_at_return=5"), NO_WANDB,
                           given={"resume", "save_dir", "stop_at_return"})
    assert override.settings.stop_at_return == 5.0


def test_stats_path_turns_off_the_normalization_warmup(store, tmp_path):
    ckpt = store / "r" / "checkpoints" / "000000.pt"
    plain = prepare_run(settings(f"--save_dir={tmp_path}", "--policy_dims=c8,4"), NO_WANDB)
    plan = prepare_run(settings(f"--save_dir={tmp_path}", "--policy_dims=c8,4", f"--stats_path={ckpt}",
                                f"--pretrained_path={ckpt}"), NO_WANDB)
    assert plain.config.norm_warmup_steps == plain.settings.norm_warmup_steps == 20
    assert plan.config.norm_warmup_steps == 0 and plan.settings.norm_warmup_steps == 20  # the flag is kept as given
    assert plan.initial_statistics.path == ckpt and plan.pretrained_weights.path == ckpt


def test_wandb_mode_is_chosen_from_flags_and_environment(tmp_path):
    no_login = {"NETRC": str(tmp_path / "no-netrc")}
    base = [f"--save_dir={tmp_path}"]
    assert prepare_run(settings(*base), {"WANDB_MODE": "disabled"}).wandb.mode == "disabled"
    assert prepare_run(settings(*base, "--unobserve"), no_login).wandb.mode == "offline"
    online = prepare_run(settings(*base, "--wandb_mode=online"), no_login)
    assert online.wandb.mode == "offline" and any("not logged in" in line for line in online.notices)
    assert prepare_run(settings(*base, "--wandb_mode=disabled"), {"WANDB_MODE": "offline"}).wandb.mode == "disabled"


def test_resume_of_a_finished_run_plans_nothing_to_do(store):
    before = tree_digest(store)
    plan = prepare_run(settings("--resume=done", f"--save_dir={store}"), NO_WANDB, given={"resume", "save_dir"})
    assert isinstance(plan, TrainPlan) and plan.already_finished
    result = train(plan)
    assert "already finished" in result.report and tree_digest(store) == before


def test_stop_at_return_stops_training_and_keeps_the_stopping_policy(tmp_path):
    """Iteration 0's return beats a threshold this low: training stops there, before any update."""
    plan = prepare_run(settings(f"--save_dir={tmp_path}", "--run_id=stop", "--stop_at_return=-1e9"), NO_WANDB)
    notices = []
    result = train(plan, notify=notices.append)
    assert result.last_metrics["stopped_early"] is True and result.last_metrics["iteration"] == 0
    run = tmp_path / "stop"
    assert [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["000000.pt"] and (run / "best.pt").is_file()
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["iterations"] == 0 and info["flags"]["stop_at_return"] == -1e9
