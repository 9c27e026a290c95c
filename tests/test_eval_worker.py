"""Evaluation in a background worker (models/evaluation.py, train.py --eval_process): the worker's returns are the
in-process returns, and a run that evaluates in the background writes byte for byte the files of one that does not,
whatever its evaluation and checkpoint schedule, early stop, divergence or worker failure."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import utils.jobs.train_loop as train_loop
from envs.resolve import make_env
from models.divergence import TrainingDiverged
from models.evaluation import (EvaluationRequest, EvaluationWorker, evaluate_request, request_from_bytes,
                               request_to_bytes)
from tests.helpers import ROOT, TINY_CAR1D, small_config, small_trainer, train_run, tree_digest
from utils.jobs.train_loop import _evaluation_due, _evaluations_left, run_training
from utils.runs.store import create_run

WALL_CLOCK_FILES = {"timing.jsonl"}


def random_request(env_id: str, dims: list[int], seed: int = 7, obs_norm: bool = True,
                   episodes: int = 3) -> EvaluationRequest:
    rng = np.random.default_rng(seed)
    layers = [(rng.standard_normal((o, i)) / np.sqrt(i), 0.1 * rng.standard_normal(o)) for i, o in zip(dims, dims[1:])]
    return EvaluationRequest(layers=layers, obs_mean=rng.standard_normal(dims[0]),
                             obs_var=rng.uniform(0.5, 3.0, dims[0]), obs_norm=obs_norm, seed=seed, episodes=episodes)


def same_state(a, b) -> bool:
    """Checkpoint payloads equal in every tensor, array and value."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def files_written(save_dir) -> dict[str, str]:
    return {name: digest for name, digest in tree_digest(save_dir).items()
            if name.split("/")[-1] not in WALL_CLOCK_FILES}


def train_both_ways(tmp_path, overrides: dict, *, after_iteration=None, patch=None):
    """The same run trained with in-process and with background evaluation: (files, last metrics, trainer) each."""
    outcomes = {}
    for mode in ("inprocess", "subprocess"):
        trainer = small_trainer(**overrides)
        if patch is not None:
            patch(trainer)
        run = create_run(tmp_path / mode, "r")
        try:
            last = run_training(trainer, run, after_iteration=after_iteration, eval_process=mode)
            last = {k: v for k, v in last.items() if k not in train_loop.TIMING_KEYS}  # wall clock
            outcomes[mode] = (files_written(tmp_path / mode), last, trainer)
        except TrainingDiverged as err:
            outcomes[mode] = (files_written(tmp_path / mode), err.iteration, trainer)
        finally:
            trainer.close()
    return outcomes["inprocess"], outcomes["subprocess"]


def test_a_request_survives_its_bytes():
    request = random_request("Car1DEnv-v1", [2, 8, 4, 1], obs_norm=False)
    back = request_from_bytes(request_to_bytes(request))
    assert (back.seed, back.episodes, back.obs_norm, len(back.layers)) == (request.seed, 3, False, 3)
    for (W, b), (W2, b2) in zip(request.layers, back.layers):
        assert np.array_equal(W, W2) and np.array_equal(b, b2) and W2.dtype == np.float64
    assert np.array_equal(back.obs_mean, request.obs_mean) and np.array_equal(back.obs_var, request.obs_var)


@pytest.mark.parametrize("env_id, dims", [("Car1DEnv-v1", [2, 8, 4, 1]),
                                          pytest.param("Hopper-v5", [11, 32, 32, 3], marks=pytest.mark.slow)])
def test_the_worker_returns_bit_identically_what_this_process_returns(env_id, dims):
    """Hopper: episodes end at different steps when the hopper falls."""
    envs = [make_env(env_id) for _ in range(3)]
    worker = EvaluationWorker(env_id, 3)
    try:
        for seed, obs_norm in [(3, True), (11, False), (3, True)]:  # the worker's envs are reused like ours
            request = random_request(env_id, dims, seed, obs_norm)
            worker.submit(request)
            assert worker.collect() == evaluate_request(request, envs)
            assert worker.last_seconds > 0
    finally:
        worker.close()
        for env in envs:
            env.close()
    assert worker._process.returncode == 0  # closing its stdin ends it cleanly


@pytest.mark.parametrize("env_id, dims", [("Car1DEnv-v1", [2, 8, 4, 1]),
                                          pytest.param("HalfCheetah-v5", [17, 16, 16, 6], marks=pytest.mark.slow)])
def test_a_split_request_returns_the_whole_requests_returns(env_id, dims):
    """The worker steps the first episodes and this process the last: concatenated, the returns of the whole."""
    request = random_request(env_id, dims, seed=5, episodes=4)
    envs = [make_env(env_id) for _ in range(4)]
    try:
        whole = evaluate_request(request, envs)
        for tail in range(5):
            head_part, tail_part = request.split(tail)
            assert (head_part.episodes, tail_part.episodes, tail_part.seed) == (4 - tail, tail, 5 + 4 - tail)
            assert evaluate_request(head_part, envs) + evaluate_request(tail_part, envs[::-1]) == whole
    finally:
        for env in envs:
            env.close()
    assert len(set(whole)) == 4


def test_a_request_the_worker_cannot_evaluate_makes_it_unusable_not_wrong():
    worker = EvaluationWorker("Car1DEnv-v1", 2)
    try:
        worker.submit(random_request("Car1DEnv-v1", [5, 4, 1]))  # Car1D states are 2-D: the first product fails
        assert worker.collect() is None and not worker.usable
        assert worker.collect() is None  # and it is not asked again
    finally:
        worker.close()


def test_a_worker_that_cannot_start_leaves_evaluation_to_this_process(monkeypatch):
    def no_process(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    worker = EvaluationWorker("Car1DEnv-v1", 2)
    worker.submit(random_request("Car1DEnv-v1", [2, 4, 1], episodes=2))
    assert not worker.usable and worker.collect() is None
    worker.close()


def test_a_models_folder_where_train_runs_does_not_shadow_ours(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")  # a regular package: it would win over ours
    (tmp_path / "models" / "evaluation.py").write_text("raise SystemExit('the wrong models package')\n")
    monkeypatch.chdir(tmp_path)
    request = random_request("Car1DEnv-v1", [2, 8, 4, 1], episodes=2)
    worker = EvaluationWorker("Car1DEnv-v1", 2)
    try:
        worker.submit(request)
        returns = worker.collect()
    finally:
        worker.close()
    envs = [make_env("Car1DEnv-v1") for _ in range(2)]
    assert returns == evaluate_request(request, envs)


def test_the_worker_module_imports_no_torch():
    """Its start-up is what --eval_process=auto weighs; torch alone would take seconds."""
    code = "import sys, models.evaluation; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize("eval_every, save_every", [(1, 1), (2, 3), (3, 1), (1, 4)])
def test_background_evaluation_writes_the_same_files(tmp_path, eval_every, save_every):
    """Metrics lines, every checkpoint (with its eval fields) and best.pt: the same bytes."""
    overrides = dict(total_timesteps=128 * 5, eval_every=eval_every, save_every=save_every, eval_episodes=3)
    (here_files, here_last, here), (there_files, there_last, there) = train_both_ways(tmp_path, overrides)
    assert len(here_files) > 3 and there_files == here_files
    assert there_last == here_last and there_last["iteration"] == 5
    assert (there.best_eval_return, there.iteration) == (here.best_eval_return, here.iteration)
    evaluated = [json.loads(line)["iteration"] for line in (tmp_path / "subprocess/r/metrics.jsonl").read_text()
                 .splitlines() if "eval_return" in json.loads(line)]
    assert evaluated == [i for i in range(6) if i % eval_every == 0 or i == 5]


@pytest.mark.parametrize("stop_at", [0, 2, 3])
def test_an_early_stop_puts_the_trainer_back_to_the_stopping_iteration(tmp_path, stop_at):
    """The worker evaluates k while k + 1 trains; the callback stops at k: k + 1 leaves no trace."""
    overrides = dict(total_timesteps=128 * 5, eval_every=1, save_every=2)
    (here_files, here_last, here), (there_files, there_last, there) = train_both_ways(
        tmp_path, overrides, after_iteration=lambda metrics: metrics["iteration"] == stop_at)
    assert there_files == here_files and there_last == here_last
    assert there_last["stopped_early"] is True and there_last["iteration"] == stop_at
    assert there.iteration == here.iteration == stop_at and there.timesteps == here.timesteps
    # the restored trainer is the one that never trained past the stop: weights, optimizer, statistics, RNGs, envs
    assert same_state(there.state_dict(), here.state_dict())


def diverge_at(iteration: int):
    def patch(trainer):
        train_iteration = trainer.train_iteration

        def with_an_absurd_learning_rate() -> dict:
            if trainer.iteration == iteration - 1:  # 1e37 sends Adam's first step out of range
                for group in trainer.optimizer.param_groups:
                    group["lr"] = 1e37
            return train_iteration()

        trainer.train_iteration = with_an_absurd_learning_rate
    return patch


def test_a_divergence_while_the_previous_iteration_is_evaluated_writes_that_iteration_first(tmp_path):
    overrides = dict(total_timesteps=128 * 5, eval_every=1, save_every=1)
    (here_files, here_error, _), (there_files, there_error, _) = train_both_ways(tmp_path, overrides,
                                                                                 patch=diverge_at(3))
    assert here_error == there_error == 3 and there_files == here_files
    assert [json.loads(line)["iteration"] for line in (tmp_path / "subprocess/r/metrics.jsonl").read_text()
            .splitlines()] == [0, 1, 2]


def test_a_stop_at_the_iteration_before_a_divergence_is_a_stop(tmp_path):
    """In-process, training stops at 2 and 3 never runs; in the background 3 ran (and diverged) meanwhile."""
    overrides = dict(total_timesteps=128 * 5, eval_every=1, save_every=1)
    (here_files, here_last, here), (there_files, there_last, there) = train_both_ways(
        tmp_path, overrides, after_iteration=lambda metrics: metrics["iteration"] == 2, patch=diverge_at(3))
    assert here_last["stopped_early"] is True and there_last == here_last and there_files == here_files
    assert there.iteration == 2


def test_a_worker_that_dies_mid_run_is_replaced_by_this_process(tmp_path, monkeypatch):
    workers = []

    class DyingWorker(EvaluationWorker):
        def submit(self, request):
            workers.append(self)
            if len(workers) == 3:
                self._process.kill()
                self._process.wait()
            super().submit(request)

    monkeypatch.setattr(train_loop, "EvaluationWorker", DyingWorker)
    overrides = dict(total_timesteps=128 * 5, eval_every=1, save_every=1)
    (here_files, here_last, _), (there_files, there_last, _) = train_both_ways(tmp_path, overrides)
    assert len(workers) == 3 and not workers[0].usable  # used for iterations 0-2, then never again
    assert there_files == here_files and there_last == here_last


@pytest.mark.parametrize("share", ["all but one here", "one here", "alternating"])
def test_any_share_of_the_episodes_writes_the_same_files(tmp_path, monkeypatch, share):
    calls = []

    def episodes_here(self, episodes, train_seconds):
        calls.append(episodes)
        return {"all but one here": episodes - 1, "one here": 1, "alternating": len(calls) % 2 * (episodes - 1)}[share]

    monkeypatch.setattr(train_loop._Evaluations, "_episodes_here", episodes_here)
    overrides = dict(total_timesteps=128 * 4, eval_every=1, save_every=1, eval_episodes=4)
    (here_files, here_last, _), (there_files, there_last, _) = train_both_ways(tmp_path, overrides)
    assert calls == [4] * 5 and there_files == here_files and there_last == here_last


def test_the_share_kept_here_makes_both_processes_finish_soonest():
    evaluations = train_loop._Evaluations.__new__(train_loop._Evaluations)
    rng = np.random.default_rng(0)
    for _ in range(300):
        episodes = int(rng.integers(1, 12))
        train, here, there = rng.uniform(0.0, 1.0), rng.uniform(0.01, 0.2), rng.uniform(0.01, 0.2)
        evaluations.episode_seconds_here, evaluations.episode_seconds_worker = here, there
        m = evaluations._episodes_here(episodes, train)
        finish = [max(train + k * here, (episodes - k) * there) for k in range(episodes)]
        assert 0 <= m < episodes and finish[m] == min(finish)
    evaluations.episode_seconds_worker = None  # the worker has not answered yet: it takes every episode
    assert evaluations._episodes_here(5, 0.3) == 0


def test_evaluations_left_counts_every_due_iteration_after_this_one():
    cfg = small_config(total_timesteps=128 * 6, eval_every=4)
    assert [_evaluation_due(cfg, j) for j in range(7)] == [True, False, False, False, True, False, True]
    for n_iterations in range(1, 12):
        for eval_every in range(0, 5):
            cfg = small_config(total_timesteps=128 * n_iterations, eval_every=eval_every)
            assert cfg.n_iterations == n_iterations
            for k in range(n_iterations + 1):
                due = [j for j in range(k + 1, n_iterations + 1) if _evaluation_due(cfg, j)]
                assert _evaluations_left(cfg, k) == len(due), (n_iterations, eval_every, k)


@pytest.mark.parametrize("cpus, started", [(2, True), (1, False)])
def test_auto_starts_a_worker_once_evaluating_here_is_slow_and_a_second_cpu_is_free(tmp_path, monkeypatch, cpus,
                                                                                       started):
    created = []

    class CountedWorker(EvaluationWorker):
        def __init__(self, *args):
            created.append(args)
            super().__init__(*args)

    monkeypatch.setattr(train_loop, "EvaluationWorker", CountedWorker)
    monkeypatch.setattr(train_loop, "available_cpus", lambda: cpus)
    monkeypatch.setattr(train_loop, "WORKER_PAYS_OFF_SECONDS", 0.0)  # every evaluation counts as slow
    trainer = small_trainer(total_timesteps=128 * 3, eval_every=1, eval_episodes=2)
    try:
        run_training(trainer, create_run(tmp_path / "auto", "r"), eval_process="auto")
    finally:
        trainer.close()
    assert created == ([("Car1DEnv-v1", 2)] if started else [])
    here = small_trainer(total_timesteps=128 * 3, eval_every=1, eval_episodes=2)
    try:
        run_training(here, create_run(tmp_path / "inprocess", "r"), eval_process="inprocess")
    finally:
        here.close()
    assert files_written(tmp_path / "auto") == files_written(tmp_path / "inprocess")


def test_auto_keeps_fast_evaluations_in_this_process(tmp_path, monkeypatch):
    monkeypatch.setattr(train_loop, "EvaluationWorker", None)  # would fail if it were started
    monkeypatch.setattr(train_loop, "available_cpus", lambda: 2)
    trainer = small_trainer(total_timesteps=128 * 3, eval_every=1, eval_episodes=1)
    try:
        last = run_training(trainer, create_run(tmp_path, "r"), eval_process="auto")
    finally:
        trainer.close()
    assert last["iteration"] == 3


def test_train_py_eval_process_flag_trains_the_same_run(tmp_path):
    runs = {mode: train_run(tmp_path / mode, "r", *TINY_CAR1D, f"--eval_process={mode}")
            for mode in ("inprocess", "subprocess")}
    assert (runs["subprocess"] / "metrics.jsonl").read_bytes() == (runs["inprocess"] / "metrics.jsonl").read_bytes()
    assert (runs["subprocess"] / "best.pt").read_bytes() == (runs["inprocess"] / "best.pt").read_bytes()
