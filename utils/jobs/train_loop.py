"""The training loop of a run: PPO iterations written to the run store (metrics.jsonl, checkpoints, best.pt).

Iteration 0 is the initial policy (after the normalization warm-up, before any update); iteration k follows
the k-th rollout and update. The Trainer (models/training.py) knows nothing of the run store; this loop does.

Evaluations can run in a background worker (models/evaluation.py, --eval_process): iteration k is evaluated there
while iteration k + 1 trains, and iteration k is written (metrics line, checkpoint, best.pt, the caller's
callback) once its returns are back. Everything written is what the same run with in-process evaluation writes:
the worker evaluates the same request with the same function, a snapshot of iteration k's state is what gets
saved, and when the callback stops training at k the trainer is put back to k, as if k + 1 never ran.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from models.checkpoint import config_digest, save_checkpoint
from models.divergence import TrainingDiverged
from models.evaluation import EvaluationRequest, EvaluationWorker
from models.training import Trainer
from utils.flags import available_cpus
from utils.runs.io import append_jsonl
from utils.runs.store import RunPaths
from utils.settings import EVAL_PROCESSES

TIMING_KEYS = ("fps", "rollout_seconds", "update_seconds")  # wall-clock figures: timing.jsonl, never metrics.jsonl
# --eval_process=auto starts the worker once the evaluations still due would take longer than this in this
# process: the worker's start-up (about 0.3 s, on the other CPU while training goes on) is then repaid.
WORKER_PAYS_OFF_SECONDS = 1.0


def run_training(trainer: Trainer, run: RunPaths, *, after_iteration: Callable[[dict], bool] | None = None,
                 on_checkpoint: Callable[[int, Path], None] | None = None, eval_process: str = "inprocess") -> dict:
    """Train until total_timesteps, or until `after_iteration(metrics)` returns True; returns the last metrics.

    Writes one metrics.jsonl line per iteration, a checkpoint every save_every iterations and at the last one
    (also at the iteration that stopped training early, so the stopping policy is kept), and best.pt.
    Every checkpoint and best.pt carries the run's id and config digest, so a resume can tell its own files
    from files copied in. The metrics of an early stop carry ``stopped_early: True``.

    `eval_process` says where evaluations run: "inprocess"; "subprocess" (a background worker from the first
    evaluation on); "auto" (a worker once evaluating here proves slow enough to pay for one, if a second CPU is
    usable). The files written are the same for all three.

    An iteration whose update diverges (models.divergence.TrainingDiverged, raised by train_iteration before
    anything of the iteration is written) leaves no metrics line, checkpoint or best.pt behind: the exception
    passes through, and the newest checkpoint is the last finite one.
    """
    cfg = trainer.cfg
    identity = {"run_id": run.run_id, "config_digest": config_digest(cfg.to_dict())}
    evaluations = _Evaluations(trainer, eval_process)

    def checkpoint_payload() -> dict:
        return {**trainer.state_dict(), **identity}

    def write_iteration(metrics: dict, payload: Callable[[], dict]) -> bool:
        """The iteration's metrics and timing lines, best.pt and its checkpoint when due, then the callback;
        True when training stops here. `payload` gives the iteration's checkpoint payload."""
        iteration, is_last = metrics["iteration"], metrics["iteration"] >= cfg.n_iterations
        # metrics first, then checkpoint: a kill in between is undone on resume by truncating metrics.jsonl.
        # Wall-clock figures go to timing.jsonl so metrics.jsonl is identical across runs with the same seed.
        append_jsonl(run.metrics, _jsonable({k: v for k, v in metrics.items() if k not in TIMING_KEYS}))
        if all(k in metrics for k in TIMING_KEYS):  # iteration 0 has no rollout to time
            append_jsonl(run.timing, {"iteration": iteration, **{k: metrics[k] for k in TIMING_KEYS}})
        state = None
        if metrics.get("eval_improved") or (cfg.eval_every == 0 and iteration % cfg.save_every == 0):
            state = payload()
            save_checkpoint(run.best, state)
        saved = iteration % cfg.save_every == 0 or is_last
        if saved:
            write_checkpoint(iteration, state or payload())
        stop = after_iteration is not None and bool(after_iteration(metrics))
        if stop and not saved:
            write_checkpoint(iteration, state or payload())  # keep the policy that stopped training as a checkpoint
        return stop

    def write_checkpoint(iteration: int, payload: dict) -> None:
        path = run.checkpoint(iteration)
        save_checkpoint(path, payload)
        if on_checkpoint:
            on_checkpoint(iteration, path)

    def write_pending(pending: _Pending) -> bool:
        """Finish the iteration's evaluation (its share here, then the worker's), then write the iteration; True
        when it stops."""
        pending.metrics.update(evaluations.collect(pending.request))
        # the snapshot was taken before the result: its eval fields are what an in-process evaluation would give
        pending.payload.update(eval_return=trainer.last_eval_return, best_eval_return=trainer.best_eval_return)
        return write_iteration(pending.metrics, lambda: pending.payload)

    def stop_at(pending: _Pending) -> dict:
        trainer.load_state_dict(pending.payload)  # back to the stopping iteration: the next one never happened
        return {**pending.metrics, "stopped_early": True}

    metrics: dict | None = None
    if trainer.iteration == 0 and not run.checkpoint(0).exists():
        trainer.warmup()
        metrics = {"iteration": 0, "timesteps": 0}
    last: dict = {}
    pending: _Pending | None = None
    try:
        while True:
            if metrics is None and trainer.iteration < cfg.n_iterations:
                try:
                    metrics = trainer.train_iteration()
                except TrainingDiverged:
                    # the iteration before it is complete: write it; if the callback stops there, this one
                    # never ran (as with in-process evaluation) and the divergence does not count
                    if pending is not None and write_pending(pending):
                        return stop_at(pending)
                    raise
            if pending is not None:
                if write_pending(pending):
                    return stop_at(pending)
                last, pending = pending.metrics, None
            if metrics is None:
                return last
            if _evaluation_due(cfg, metrics["iteration"]):
                if evaluations.in_background():
                    request = evaluations.submit(trainer.evaluation_request(), last_iteration=metrics["iteration"]
                                                 >= cfg.n_iterations)
                    pending, metrics = _Pending(metrics, request, checkpoint_payload()), None
                    continue
                metrics.update(evaluations.here(_evaluations_left(cfg, metrics["iteration"])))
            if write_iteration(metrics, checkpoint_payload):
                return {**metrics, "stopped_early": True}
            last, metrics = metrics, None
    finally:
        evaluations.close()


@dataclass
class _Pending:
    """An iteration trained and snapshotted, whose evaluation is under way."""

    metrics: dict             # its metrics so far (the evaluation's are added when it is finished)
    request: _SplitRequest
    payload: dict             # its checkpoint payload, taken before the next iteration trained


@dataclass
class _SplitRequest:
    """An evaluation shared out: the worker steps the first episodes, this process the last `here.episodes`
    after training the next iteration."""

    worker: EvaluationRequest
    here: EvaluationRequest
    submitted_at: float       # time.perf_counter() when the worker got its share


class _Evaluations:
    """Where a run's evaluations happen (see run_training's `eval_process`).

    With a worker, the episodes of iteration k are shared so that both processes finish together: the worker
    steps its share while this process trains k + 1, then this process steps the rest. The share is chosen from
    the last iteration's measured seconds (training, and an episode here and in the worker); any share gives the
    same returns."""

    def __init__(self, trainer: Trainer, eval_process: str):
        if eval_process not in EVAL_PROCESSES:
            raise ValueError(f"eval_process must be one of {EVAL_PROCESSES}, got {eval_process!r}")
        self.trainer, self.mode = trainer, eval_process
        self.worker: EvaluationWorker | None = None
        if eval_process == "subprocess" and trainer.cfg.eval_every > 0:
            self._start_worker()
        # measured seconds: training between a submit and its collect, one episode here, one in the worker
        self.train_seconds: float | None = None
        self.episode_seconds_here: float | None = None
        self.episode_seconds_worker: float | None = None

    def in_background(self) -> bool:
        return self.worker is not None and self.worker.usable

    def here(self, evaluations_left: int) -> dict:
        """Evaluate in this process; under "auto", start the worker for later ones if that pays."""
        start = time.perf_counter()
        result = self.trainer.evaluate()
        seconds = time.perf_counter() - start
        self.episode_seconds_here = seconds / self.trainer.cfg.eval_episodes
        if (self.mode == "auto" and self.worker is None and available_cpus() >= 2
                and seconds * evaluations_left > WORKER_PAYS_OFF_SECONDS):
            self._start_worker()
        return result

    def _start_worker(self) -> None:
        self.worker = EvaluationWorker(self.trainer.cfg.env_id, self.trainer.cfg.eval_episodes)

    def submit(self, request: EvaluationRequest, last_iteration: bool) -> _SplitRequest:
        """Send the worker its share of `request` (nothing trains after the last iteration: then only the
        episodes decide the share)."""
        train_seconds = 0.0 if last_iteration else self.train_seconds
        worker_part, here_part = request.split(self._episodes_here(request.episodes, train_seconds))
        self.worker.submit(worker_part)
        return _SplitRequest(worker_part, here_part, time.perf_counter())

    def _episodes_here(self, episodes: int, train_seconds: float | None) -> int:
        """The share of this process that ends soonest: max(train + m x here, (n - m) x worker) smallest over
        m = 0 .. n - 1 (the worker keeps at least one episode); 0 until every time is measured."""
        here, there = self.episode_seconds_here, self.episode_seconds_worker
        if train_seconds is None or here is None or there is None:
            return 0
        return min(range(episodes), key=lambda m: max(train_seconds + m * here, (episodes - m) * there))

    def collect(self, request: _SplitRequest) -> dict:
        """The metrics of a submitted evaluation: this process's share stepped now, then the worker's returns
        (stepped here too if the worker failed: the same returns)."""
        self.train_seconds = time.perf_counter() - request.submitted_at
        returns_here: list[float] = []
        if request.here.episodes:
            start = time.perf_counter()
            returns_here = self.trainer.evaluation_returns(request.here)
            self.episode_seconds_here = (time.perf_counter() - start) / request.here.episodes
        returns = self.worker.collect()
        if returns is None:
            returns = self.trainer.evaluation_returns(request.worker)
        else:
            self.episode_seconds_worker = self.worker.last_seconds / request.worker.episodes
        return self.trainer.record_evaluation(returns + returns_here)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def _evaluation_due(cfg, iteration: int) -> bool:
    """Whether `iteration` is evaluated: every eval_every-th iteration, and the last one."""
    return cfg.eval_every > 0 and (iteration % cfg.eval_every == 0 or iteration >= cfg.n_iterations)


def _evaluations_left(cfg, iteration: int) -> int:
    """How many iterations after `iteration` are due (_evaluation_due), counted in closed form."""
    n = cfg.n_iterations
    if cfg.eval_every <= 0 or iteration >= n:
        return 0
    return n // cfg.eval_every - iteration // cfg.eval_every + (1 if n % cfg.eval_every else 0)


def _jsonable(metrics: dict) -> dict:
    """JSON has no NaN or infinity: such values are written as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
