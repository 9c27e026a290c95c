"""Time evaluate.py's work on a run of 50 checkpoints of a c64,64 HalfCheetah-v5 policy (CPU, deterministic policy,
fixed + current trajectories), split into trajectory sampling and region counting.

The run is trained first into a temporary run store (not timed): 50 PPO iterations of 20 steps on one env, a
checkpoint every iteration (51 with iteration 0), evaluated every 10. Then (a) sampling: best.pt's episode and
every checkpoint's own 1,000-step episode, written to the trajectory cache; (b) counting: evaluate_run
(utils.jobs.evaluate) on the cached states (load checkpoints, normalize, exact counts, history.csv + summary.json,
no plots). Last line:
JSON with the figures. Target: under 30 s in total.

Run: .venv/bin/python benchmarks/bench_evaluate.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models.checkpoint import load_checkpoint  # noqa: E402
from utils.analysis.sources import ResolvedRun  # noqa: E402
from utils.analysis.trajectories import cached_episode  # noqa: E402
from utils.jobs.evaluate import EvaluationPlan, evaluate_run, run_setup  # noqa: E402
from utils.runs.store import RunPaths, read_run_info  # noqa: E402
from utils.settings import EvaluateSettings  # noqa: E402

TRAIN = ["--env=HalfCheetah-v5", "--policy_dims=c64,64", "--value_dims=c64,64", "--total_timesteps=1000",
         "--nsteps=20", "--n_envs=1", "--batch_size=20", "--n_epochs=1", "--eval_every=10", "--eval_episodes=1",
         "--norm_warmup_steps=200", "--quiet", "--run_id=bench"]


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        env = {**os.environ, "WANDB_MODE": "disabled"}
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "train.py"), *TRAIN, f"--save_dir={store}"], check=True, env=env,
                       capture_output=True)
        train_s = time.perf_counter() - t
        run = RunPaths(store / "bench")
        info = read_run_info(run)
        checkpoints = run.list_checkpoints()

        t = time.perf_counter()
        best = load_checkpoint(run.best)
        cached_episode(run.trajectories_dir, "best", best, info["env_id"], stochastic=False, seed=0)
        for it, path in checkpoints:
            cached_episode(run.trajectories_dir, f"{it:06d}", load_checkpoint(path), info["env_id"],
                           stochastic=False, seed=0)
        sampling_s = time.perf_counter() - t

        settings = EvaluateSettings(run_id="bench", checkpoints_dir=store, results_dir=Path(tmp) / "results",
                                    no_plots=True, no_wandb_log=True)
        plan = EvaluationPlan(settings, wandb_mode="disabled", wandb_log=False, workers=1)
        t = time.perf_counter()
        result = evaluate_run(run_setup(ResolvedRun(run, info), settings), plan)
        counting_s = time.perf_counter() - t
        states = sum(1 for _ in checkpoints)
    figures = {"checkpoints": states, "policy": "c64,64", "env": info["env_id"],
               "sampling_seconds": round(sampling_s, 2), "counting_seconds": round(counting_s, 2),
               "total_seconds": round(sampling_s + counting_s, 2), "target_seconds": 30,
               "evaluated": result.evaluated, "train_seconds_untimed": round(train_s, 1)}
    print(f"sampling {sampling_s:.2f} s, counting {counting_s:.2f} s for {states} checkpoints")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
