"""Time evaluate.py on a run of 50 checkpoints of a trained c64,64 HalfCheetah-v5 policy (CPU, deterministic and
stochastic policy, fixed + current trajectories) against the physical floor: MuJoCo stepping the same episodes.

The run: 100k steps of PPO with the paper's flags (2 envs x 1000 steps per iteration, batch 64, 10 epochs,
policy and value c64,64), a checkpoint every iteration (51 with iteration 0), evaluated every 10 iterations for
best.pt. It is trained once (about a minute, not timed) and kept in benchmarks/.cache/ (git-ignored) for later
runs of this script; --retrain trains it again.

Timed, each from an empty trajectory cache unless said otherwise:
- sampling: every episode evaluate.py needs (best.pt's and each checkpoint's, deterministic and stochastic:
  104 episodes of 1,000 steps), as evaluate.py samples them (utils.jobs.evaluate.sample_batches: load the
  checkpoints, one lockstep batch of envs, one stacked forward pass per step, write the cache);
- floor: the same episodes replayed, one env each (make, reset with the episode's seed, step with the recorded
  actions), with no policy at all: what MuJoCo and gymnasium cost for these env steps. The replayed states must
  equal the sampled ones (the replay is the same physics);
- one at a time (for comparison, --skip_one_at_a_time to leave out): utils.analysis.trajectories.sample_episode
  per episode, the sampler evaluate.py used before; its states must equal the batched ones bit for bit;
- evaluation: evaluate_run (utils.jobs.evaluate) from an empty cache: sampling + counting + history.csv and
  summary.json (no plots, --workers as given);
- counting: evaluate_run again with every episode cached (--overwrite: every checkpoint is counted again).

Targets: sampling <= 2 x floor; evaluation <= 1.5 x floor + counting. Timings on a machine shared with other
work are noisy; the ratios are measured in one run of this script. Last line: JSON with the figures.

Run: .venv/bin/python benchmarks/bench_evaluate.py [--workers 1] [--skip_one_at_a_time] [--retrain]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from envs.resolve import make_env  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from utils.analysis.sources import ResolvedRun  # noqa: E402
from utils.analysis.trajectories import cache_path, sample_episode  # noqa: E402
from utils.jobs.evaluate import (BEST, EvaluationPlan, evaluate_run, run_setup, sample_batches,  # noqa: E402
                                 sampling_batches)
from utils.runs.io import load_npz  # noqa: E402
from utils.runs.store import RunPaths, read_run_info  # noqa: E402
from utils.settings import EvaluateSettings  # noqa: E402

TRAIN = ["--env=HalfCheetah-v5", "--policy_dims=c64,64", "--value_dims=c64,64", "--total_timesteps=100000",
         "--nsteps=1000", "--n_envs=2", "--batch_size=64", "--n_epochs=10", "--eval_every=10", "--eval_episodes=5",
         "--save_every=1", "--seed=0", "--quiet", "--run_id=bench"]
CACHE = ROOT / "benchmarks" / ".cache" / "bench_evaluate"
SEED = 0
POLICY_TYPES = ("deterministic", "stochastic")


def trained_run(retrain: bool) -> RunPaths:
    """The benchmark's run, trained into benchmarks/.cache/ unless a finished one with these flags is there."""
    store = CACHE / hashlib.sha256(" ".join(TRAIN).encode()).hexdigest()[:12]
    run = RunPaths(store / "bench")
    if not retrain and run.root.is_dir() and read_run_info(run).get("status") == "finished":
        return run
    shutil.rmtree(store, ignore_errors=True)
    print(f"training the benchmark's run (100k steps, once) into {store} ...", flush=True)
    subprocess.run([sys.executable, str(ROOT / "train.py"), *TRAIN, f"--save_dir={store}"], check=True,
                   env={**os.environ, "WANDB_MODE": "disabled"})
    return run


def episodes_needed(run: RunPaths) -> list[tuple[str, Path, str]]:
    """(cache key, checkpoint path, policy type) of every episode the evaluation samples."""
    checkpoints = [(BEST, run.best)] + [(f"{it:06d}", path) for it, path in run.list_checkpoints()]
    return [(key, path, p) for key, path in checkpoints for p in POLICY_TYPES]


def replay_floor(run: RunPaths, env_id: str, episodes: list) -> tuple[float, int, bool]:
    """Seconds to replay every cached episode's actions on a fresh env (make, seeded reset, steps), the env steps,
    and whether every replayed state equals the cached one."""
    recorded = [load_npz(cache_path(run.trajectories_dir, key, p, SEED)) for key, _, p in episodes]
    same, steps = True, 0
    start = time.perf_counter()
    for data in recorded:
        env = make_env(env_id)
        obs, _ = env.reset(seed=SEED)
        states = [obs]
        for action in data["actions"]:
            obs, *_ = env.step(action)
            states.append(obs)
        env.close()
        steps += len(data["actions"])
        same &= np.array_equal(np.asarray(states[:-1], dtype=np.float64), data["states"])
    return time.perf_counter() - start, steps, bool(same)


def one_at_a_time(run: RunPaths, env_id: str, episodes: list) -> tuple[float, bool]:
    """Seconds to sample every episode alone with sample_episode (checkpoints loaded as the batch loads them), and
    whether every episode equals the batched one in the cache bit for bit."""
    same = True
    start = time.perf_counter()
    for key, path, p in episodes:
        episode = sample_episode(env_id, load_checkpoint(path), stochastic=(p == "stochastic"), seed=SEED)
        cached = load_npz(cache_path(run.trajectories_dir, key, p, SEED))
        same &= all(np.array_equal(getattr(episode, name), cached[name]) for name in ("states", "actions", "rewards"))
    return time.perf_counter() - start, bool(same)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="evaluate.py's --workers for sampling and counting")
    parser.add_argument("--skip_one_at_a_time", action="store_true", help="do not time the one-at-a-time sampler")
    parser.add_argument("--retrain", action="store_true", help="train the cached run again")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = trained_run(args.retrain)
    info = read_run_info(run)
    env_id = info["env_id"]
    episodes = episodes_needed(run)
    with tempfile.TemporaryDirectory() as tmp:
        settings = EvaluateSettings(run_id="bench", checkpoints_dir=run.root.parent, results_dir=Path(tmp),
                                    add_stochastic=True, overwrite=True, no_plots=True, no_wandb_log=True,
                                    workers=args.workers, seed=SEED)
        plan = EvaluationPlan(settings, wandb_mode="disabled", wandb_log=False, workers=args.workers)
        setup = run_setup(ResolvedRun(run, info), settings)

        shutil.rmtree(run.trajectories_dir, ignore_errors=True)
        start = time.perf_counter()
        sample_batches(sampling_batches([setup], settings, args.workers), args.workers)
        sampling_s = time.perf_counter() - start
        floor_s, steps, replay_equal = replay_floor(run, env_id, episodes)
        single_s, identical = (None, None) if args.skip_one_at_a_time else one_at_a_time(run, env_id, episodes)

        shutil.rmtree(run.trajectories_dir)
        start = time.perf_counter()
        report = evaluate_run(setup, plan)
        evaluation_s = time.perf_counter() - start
        start = time.perf_counter()
        evaluate_run(setup, plan)
        counting_s = time.perf_counter() - start

    figures = {
        "env": env_id, "policy": "c64,64", "run_timesteps": info["config"]["total_timesteps"],
        "checkpoints": report.evaluated, "episodes": len(episodes), "env_steps": steps, "workers": args.workers,
        "floor_seconds": round(floor_s, 2), "sampling_seconds": round(sampling_s, 2),
        "sampling_over_floor": round(sampling_s / floor_s, 3), "sampling_target": 2.0,
        "one_at_a_time_seconds": None if single_s is None else round(single_s, 2),
        "one_at_a_time_over_floor": None if single_s is None else round(single_s / floor_s, 3),
        "batched_states_identical_to_one_at_a_time": identical, "replay_states_equal": replay_equal,
        "evaluation_seconds": round(evaluation_s, 2), "counting_seconds": round(counting_s, 2),
        "evaluation_over_floor_plus_counting": round(evaluation_s / (floor_s + counting_s), 3),
        "evaluation_target_seconds": round(1.5 * floor_s + counting_s, 2),
        "targets_met": sampling_s <= 2 * floor_s and evaluation_s <= 1.5 * floor_s + counting_s,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(f"{len(episodes)} episodes, {steps} env steps: floor {floor_s:.2f} s, sampling {sampling_s:.2f} s "
          f"({sampling_s / floor_s:.2f}x), one at a time {single_s if single_s is None else round(single_s, 2)} s; "
          f"evaluation {evaluation_s:.2f} s = sampling + counting {counting_s:.2f} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
