"""utils/jobs/train_loop.py: the loop writes metrics and checkpoints, and stops when its callback says so."""
from __future__ import annotations

import json

import pytest
import torch

from models.checkpoint import read_checkpoint
from models.divergence import TrainingDiverged
from tests.test_checkpoint import small_trainer
from utils.jobs.train_loop import run_training
from utils.runs.store import create_run


def _iterations(run) -> list[int]:
    return [json.loads(line)["iteration"] for line in run.metrics.read_text().splitlines()]


def test_callback_returning_true_stops_and_keeps_the_stopping_policy(tmp_path):
    trainer = small_trainer(save_every=5, eval_every=0)  # 2 iterations; only the last one's checkpoint is due
    assert trainer.cfg.n_iterations == 2
    run = create_run(tmp_path, "r")
    seen, written = [], []

    def after_iteration(metrics: dict) -> bool:
        seen.append(metrics["iteration"])
        return metrics["iteration"] == 1

    last = run_training(trainer, run, after_iteration=after_iteration,
                        on_checkpoint=lambda iteration, path: written.append((iteration, path.name)))
    assert seen == [0, 1] and last["iteration"] == 1 and last["stopped_early"] is True
    assert trainer.iteration == 1 and _iterations(run) == [0, 1]
    assert [i for i, _ in run.list_checkpoints()] == [0, 1]  # 1 is not a multiple of save_every, still saved
    assert written == [(0, "000000.pt"), (1, "000001.pt")]
    assert read_checkpoint(run.checkpoint(1))["iteration"] == 1


def test_callback_can_stop_before_any_update(tmp_path):
    trainer = small_trainer(eval_every=0)
    run = create_run(tmp_path, "r")
    last = run_training(trainer, run, after_iteration=lambda metrics: True)
    assert last == {"iteration": 0, "timesteps": 0, "stopped_early": True}
    assert trainer.iteration == 0 and _iterations(run) == [0]
    assert [i for i, _ in run.list_checkpoints()] == [0]


def test_callback_returning_false_or_none_trains_to_the_end(tmp_path):
    trainer = small_trainer(eval_every=0)
    run = create_run(tmp_path, "r")
    answers = iter([False, None, False])
    last = run_training(trainer, run, after_iteration=lambda metrics: next(answers))
    assert last["iteration"] == trainer.cfg.n_iterations == 2 and "stopped_early" not in last
    assert _iterations(run) == [0, 1, 2] and [i for i, _ in run.list_checkpoints()] == [0, 1, 2]
    assert run.best.is_file()  # eval_every=0: best.pt follows the checkpoints


def test_a_diverged_iteration_writes_nothing_and_the_newest_checkpoint_is_finite(tmp_path):
    """Issue 10, item 4: no metrics line, timing line, checkpoint or best.pt of the iteration that diverged."""
    trainer = small_trainer(total_timesteps=384, save_every=1, eval_every=1)  # 3 iterations
    run = create_run(tmp_path, "r")
    train_iteration = trainer.train_iteration

    def third_update_with_an_absurd_learning_rate() -> dict:
        if trainer.iteration == 2:  # train.py allows at most 10; 1e37 sends Adam's first step out of range
            for group in trainer.optimizer.param_groups:
                group["lr"] = 1e37
        return train_iteration()

    trainer.train_iteration = third_update_with_an_absurd_learning_rate
    try:
        with pytest.raises(TrainingDiverged) as info:
            run_training(trainer, run)
    finally:
        trainer.close()
    assert info.value.iteration == 3
    assert _iterations(run) == [0, 1, 2]
    assert [json.loads(line)["iteration"] for line in (run.root / "timing.jsonl").read_text().splitlines()] == [1, 2]
    assert [i for i, _ in run.list_checkpoints()] == [0, 1, 2]
    for path in [run.checkpoint(2), run.best]:
        state = read_checkpoint(path)
        assert state["iteration"] <= 2
        assert all(torch.isfinite(t).all() for t in [*state["policy"].values(), *state["value"].values()])
