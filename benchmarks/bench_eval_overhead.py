"""What in-training evaluation costs: a HalfCheetah-v5 run with the paper's flags (2 envs x 1000 steps per
iteration, policy and value c64,64, --eval_every=1 with 5 deterministic episodes) against the same run with
--eval_every=0, and against the physical floor of those evaluation episodes.

Each run uses the library as train.py does (utils.jobs.train.prepare_run, models.training.Trainer,
utils.jobs.train_loop.run_training: warm-up, checkpoints every iteration, best.pt) into a temporary run store,
wandb off, one torch and BLAS thread (train.py's default); wall time covers building the trainer and training.
The run with evaluation is timed twice: with train.py's default --eval_process=auto (a background worker
evaluates iteration k while k + 1 trains, once evaluating proves slow enough; the training process steps a share
of the episodes after training) and with --eval_process=inprocess (evaluation in the training process, the runs'
only way before). The two write the same metrics (checked here: eval returns equal).

The floor is MuJoCo and gymnasium alone: 5 envs stepped 1000 steps with zero actions, once per evaluation the run
made (iteration 0 included), so (eval_every=0 seconds + floor) / eval_every=0 seconds is the best ratio any
evaluation in the training process can reach; the worker is how the default gets below it (on a second core).
The in-process evaluations' own wall seconds are timed inside the run (Trainer.evaluate).

Target (issue 15): with evaluation <= 1.3 x without. Timings on a machine shared with other work are noisy; the
runs of a seed are timed back to back. Last line: JSON.

Run: .venv/bin/python benchmarks/bench_eval_overhead.py [--timesteps 20000] [--seeds 0]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("WANDB_MODE", "disabled")

from envs.resolve import make_env  # noqa: E402
from models.training import Trainer  # noqa: E402
from utils.jobs.train import limit_compute_threads, prepare_run  # noqa: E402
from utils.jobs.train_loop import run_training  # noqa: E402
from utils.runs.store import create_run  # noqa: E402
from utils.settings import TrainSettings  # noqa: E402

ENV_ID, EPISODES = "HalfCheetah-v5", 5


class TimedTrainer(Trainer):
    """The Trainer, with the wall seconds its evaluations took (the rest of the run is timed by the difference)."""

    evaluation_seconds = 0.0

    def evaluate(self) -> dict:
        start = time.perf_counter()
        result = super().evaluate()
        self.evaluation_seconds += time.perf_counter() - start
        return result


def train_seconds(seed: int, timesteps: int, eval_every: int, save_dir: Path,
                  eval_process: str = "auto") -> tuple[float, float, list]:
    """Wall seconds of one run with the paper's flags, the seconds of its in-process evaluations, and its metrics
    lines."""
    settings = TrainSettings(env=ENV_ID, policy_dims="c64,64", value_dims="c64,64", total_timesteps=timesteps,
                             nsteps=1000, n_envs=2, eval_every=eval_every, eval_episodes=EPISODES, save_every=1,
                             seed=seed, device="cpu", save_dir=str(save_dir),
                             run_id=f"e{eval_every}-{eval_process}-s{seed}",
                             wandb_mode="disabled", quiet=True)
    plan = prepare_run(settings)
    run = create_run(save_dir, plan.run_id)
    start = time.perf_counter()
    trainer = TimedTrainer(plan.config)
    run_training(trainer, run, eval_process=eval_process)
    seconds = time.perf_counter() - start
    trainer.close()
    return seconds, trainer.evaluation_seconds, [json.loads(line) for line in run.metrics.read_text().splitlines()]


def floor_seconds(evaluations: int) -> float:
    """MuJoCo stepping of `evaluations` x 5 episodes of 1000 steps with zero actions (fresh seeded resets)."""
    envs = [make_env(ENV_ID) for _ in range(EPISODES)]
    zeros = np.zeros(envs[0].action_space.shape)
    start = time.perf_counter()
    for e in range(evaluations):
        for k, env in enumerate(envs):
            env.reset(seed=e * EPISODES + k)
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(zeros)
                done = terminated or truncated
    seconds = time.perf_counter() - start
    for env in envs:
        env.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--timesteps", type=int, default=20_000)
    args = parser.parse_args()
    limit_compute_threads(1)  # as train.py's default --torch_threads=1
    without, with_auto, with_here, floors, in_run = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        # untimed: the first run in a process pays one-time costs (imports, MuJoCo's model, torch's first calls)
        train_seconds(0, 4000, 1, Path(tmp) / "warm-up", "inprocess")
        for seed in args.seeds:
            s0, _, _ = train_seconds(seed, args.timesteps, 0, Path(tmp))
            s_auto, _, metrics = train_seconds(seed, args.timesteps, 1, Path(tmp), "auto")
            s_here, evaluating, metrics_here = train_seconds(seed, args.timesteps, 1, Path(tmp), "inprocess")
            returns = [m.get("eval_return") for m in metrics]
            if returns != [m.get("eval_return") for m in metrics_here]:
                raise SystemExit("the background worker's eval returns differ from in-process ones")
            evaluations = sum(1 for r in returns if r is not None)
            floor = floor_seconds(evaluations)
            without.append(s0)
            with_auto.append(s_auto)
            with_here.append(s_here)
            floors.append(floor)
            in_run.append(evaluating)
            print(f"seed {seed}: eval_every=0 {s0:.2f} s; eval_every=1 {s_auto:.2f} s ({s_auto / s0:.2f}x) with "
                  f"--eval_process=auto, {s_here:.2f} s ({s_here / s0:.2f}x) in-process, where its {evaluations} "
                  f"evaluations took {evaluating:.2f} s against a MuJoCo floor of {floor:.2f} s", flush=True)
    t0, t_auto, t_here, floor = sum(without), sum(with_auto), sum(with_here), sum(floors)
    print(json.dumps({"env": ENV_ID, "timesteps": args.timesteps, "seeds": args.seeds, "eval_episodes": EPISODES,
                      "seconds_eval_every_0": round(t0, 2), "seconds_eval_every_1": round(t_auto, 2),
                      "ratio": round(t_auto / t0, 3), "target_ratio": 1.3,
                      "seconds_eval_every_1_inprocess": round(t_here, 2), "ratio_inprocess": round(t_here / t0, 3),
                      "inprocess_evaluation_seconds": round(sum(in_run), 2),
                      "evaluation_floor_seconds": round(floor, 2),
                      "inprocess_evaluation_over_floor": round(sum(in_run) / floor, 3),
                      "best_inprocess_ratio": round((t0 + floor) / t0, 3), "eval_returns_equal": True,
                      "load_average_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
