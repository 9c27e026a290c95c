"""The training loop of a run: PPO iterations written to the run store (metrics.jsonl, checkpoints, best.pt).

Iteration 0 is the initial policy (after the normalization warm-up, before any update); iteration k follows
the k-th rollout and update. The Trainer (models/training.py) knows nothing of the run store; this loop does.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from models.checkpoint import config_digest, save_checkpoint
from models.training import Trainer
from utils.runs.io import append_jsonl
from utils.runs.store import RunPaths

TIMING_KEYS = ("fps", "rollout_seconds", "update_seconds")  # wall-clock figures: timing.jsonl, never metrics.jsonl


def run_training(trainer: Trainer, run: RunPaths, *, after_iteration: Callable[[dict], bool] | None = None,
                 on_checkpoint: Callable[[int, Path], None] | None = None) -> dict:
    """Train until total_timesteps, or until `after_iteration(metrics)` returns True; returns the last metrics.

    Writes one metrics.jsonl line per iteration, a checkpoint every save_every iterations and at the last one
    (also at the iteration that stopped training early, so the stopping policy is kept), and best.pt.
    Every checkpoint and best.pt carries the run's id and config digest, so a resume can tell its own files
    from files copied in. The metrics of an early stop carry ``stopped_early: True``.

    An iteration whose update diverges (models.divergence.TrainingDiverged, raised by train_iteration before
    anything of the iteration is written) leaves no metrics line, checkpoint or best.pt behind: the exception
    passes through, and the newest checkpoint is the last finite one.
    """
    cfg = trainer.cfg
    metrics: dict = {}
    identity = {"run_id": run.run_id, "config_digest": config_digest(cfg.to_dict())}

    def checkpoint_payload() -> dict:
        return {**trainer.state_dict(), **identity}

    def write_checkpoint(payload: dict) -> None:
        path = run.checkpoint(trainer.iteration)
        save_checkpoint(path, payload)
        if on_checkpoint:
            on_checkpoint(trainer.iteration, path)

    def save_due(iteration_metrics: dict) -> bool:
        """best.pt when evaluation improved, the iteration's checkpoint when due; True if a checkpoint was written."""
        is_last = trainer.iteration >= cfg.n_iterations
        payload = None
        if iteration_metrics.get("eval_improved") or (cfg.eval_every == 0 and trainer.iteration % cfg.save_every == 0):
            payload = checkpoint_payload()
            save_checkpoint(run.best, payload)
        if trainer.iteration % cfg.save_every == 0 or is_last:
            write_checkpoint(payload or checkpoint_payload())
            return True
        return False

    def maybe_evaluate(iteration_metrics: dict) -> None:
        is_last = trainer.iteration >= cfg.n_iterations
        if cfg.eval_every > 0 and (trainer.iteration % cfg.eval_every == 0 or is_last):
            iteration_metrics.update(trainer.evaluate())

    def finish_iteration(iteration_metrics: dict) -> bool:
        """Save what is due, then ask the caller whether to stop; True when training stops here."""
        saved = save_due(iteration_metrics)
        stop = after_iteration is not None and bool(after_iteration(iteration_metrics))
        if stop and not saved:
            write_checkpoint(checkpoint_payload())  # keep the policy that stopped training as a checkpoint too
        return stop

    if trainer.iteration == 0 and not run.checkpoint(0).exists():
        trainer.warmup()
        metrics = {"iteration": 0, "timesteps": 0}
        maybe_evaluate(metrics)
        append_jsonl(run.metrics, _jsonable(metrics))
        if finish_iteration(metrics):
            return {**metrics, "stopped_early": True}
    while trainer.iteration < cfg.n_iterations:
        metrics = trainer.train_iteration()
        maybe_evaluate(metrics)
        # metrics first, then checkpoint: a kill in between is undone on resume by truncating metrics.jsonl.
        # Wall-clock figures go to timing.jsonl so metrics.jsonl is identical across runs with the same seed.
        append_jsonl(run.metrics, _jsonable({k: v for k, v in metrics.items() if k not in TIMING_KEYS}))
        append_jsonl(run.timing, {"iteration": metrics["iteration"],
                                  **{k: metrics[k] for k in TIMING_KEYS}})
        if finish_iteration(metrics):
            return {**metrics, "stopped_early": True}
    return metrics


def _jsonable(metrics: dict) -> dict:
    """JSON has no NaN or infinity: such values are written as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
