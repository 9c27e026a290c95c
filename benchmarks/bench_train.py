"""Time our PPO trainer against Stable-Baselines3's PPO with the same settings, and compare final returns.

Settings (both): HalfCheetah-v5, 2 envs stepped in this process (ours: envs.vector.VecEnv; SB3: DummyVecEnv),
observation and reward normalization (ours: models.normalization; SB3: VecNormalize, gamma 0.99, clip 10),
policy ReLU MLP 16,16 and separate value MLP 32,32 (SB3: net_arch=dict(pi=[16, 16], vf=[32, 32]),
activation_fn=nn.ReLU, log_std_init=-2, orthogonal init as both default to), n_steps 1000 per env, minibatch 64,
10 epochs, lr 3e-4, gamma 0.99, GAE lambda 0.95, clip 0.2, vf_coef 0.5, ent_coef 0, max_grad_norm 0.5, Adam
eps 1e-5, 100k steps, seeds 0, 1, 2. One torch and one BLAS thread for both (tiny MLPs; docs/design.md "Pitfalls
we know of").
Ours runs the library (utils.jobs.train.prepare_run for the config, models.training.Trainer and
utils.jobs.train_loop.run_training) into a temporary run store with wandb off, without the random-action
normalization warm-up (SB3 has none) and with one checkpoint at the end (SB3 saves none); its update takes the
CPU numpy path of models/ppo.py.

Wall time covers building the envs and networks plus training; evaluation is not timed and happens only at
the end for both: 10 deterministic episodes (action = mean, clipped) with observations normalized by the
final statistics and raw rewards summed, run by the same function (models.evaluation.evaluate_policy) on the
same seeds for both, SB3's policy weights copied out as numpy.

Ratios: speedup = SB3 wall seconds / ours (summed over seeds); return ratio = mean return ours / mean SB3
(over seeds; only meaningful when SB3's mean is positive). Without stable-baselines3 installed (pinned in
benchmarks/requirements.txt) only ours runs and both ratios are null. Last line: a JSON summary.

Run: .venv/bin/python benchmarks/bench_train.py [--seeds 0 1 2] [--timesteps 100000]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("WANDB_MODE", "disabled")

from envs.resolve import make_env  # noqa: E402
from utils.jobs.train import limit_compute_threads, prepare_run  # noqa: E402
from models.normalization import normalize_with  # noqa: E402
from models.networks import numpy_layers  # noqa: E402
from models.evaluation import evaluate_policy  # noqa: E402
from models.training import Trainer  # noqa: E402
from utils.jobs.train_loop import run_training  # noqa: E402
from utils.runs.store import create_run  # noqa: E402
from utils.settings import TrainSettings  # noqa: E402

ENV_ID = "HalfCheetah-v5"
N_ENVS, N_STEPS, BATCH_SIZE, N_EPOCHS = 2, 1000, 64, 10
POLICY_DIMS, VALUE_DIMS = (16, 16), (32, 32)
LOG_STD_INIT = -2.0
EVAL_EPISODES = 10
EVAL_SEED = 10_000  # + run seed; the same episodes for both implementations


def deterministic_returns(layers: list, normalize, seed: int) -> list[float]:
    """EVAL_EPISODES raw returns of the mean action on fresh env instances seeded seed, seed + 1, ..."""
    env_list = [make_env(ENV_ID) for _ in range(EVAL_EPISODES)]
    try:
        return evaluate_policy(layers, env_list, normalize, seed)
    finally:
        for env in env_list:
            env.close()


def train_ours(seed: int, timesteps: int, save_dir: Path) -> tuple[float, float, float]:
    """Wall seconds, mean eval return and mean training-update share of time for one seed of our trainer."""
    iterations = math.ceil(timesteps / (N_STEPS * N_ENVS))
    settings = TrainSettings(env=ENV_ID, policy_dims="c16,16", value_dims="c32,32", total_timesteps=timesteps,
                             nsteps=N_STEPS, n_envs=N_ENVS, batch_size=BATCH_SIZE, n_epochs=N_EPOCHS,
                             log_std_init=LOG_STD_INIT, seed=seed, eval_every=0, norm_warmup_steps=0,
                             save_every=iterations,  # one checkpoint, at the end
                             device="cpu", save_dir=str(save_dir), run_id=f"bench-ours-{seed}", wandb_mode="disabled")
    plan = prepare_run(settings)
    run = create_run(save_dir, plan.run_id)
    start = time.perf_counter()
    trainer = Trainer(plan.config)
    run_training(trainer, run)
    seconds = time.perf_counter() - start
    trainer.close()
    rms = trainer.normalizer.obs_rms
    returns = deterministic_returns(numpy_layers(trainer.policy.mean_net),
                                    lambda s: normalize_with(s, rms.mean, rms.var), EVAL_SEED + seed)
    timing = [json.loads(line) for line in (run.root / "timing.jsonl").read_text().splitlines()]
    rollout = sum(t["rollout_seconds"] for t in timing)
    update = sum(t["update_seconds"] for t in timing)
    return seconds, float(np.mean(returns)), update / (rollout + update)


def train_sb3(seed: int, timesteps: int) -> tuple[float, float]:
    """Wall seconds and mean eval return for one seed of Stable-Baselines3's PPO with the same settings."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    start = time.perf_counter()
    venv = VecNormalize(DummyVecEnv([lambda: make_env(ENV_ID) for _ in range(N_ENVS)]), gamma=0.99)
    model = PPO("MlpPolicy", venv, n_steps=N_STEPS, batch_size=BATCH_SIZE, n_epochs=N_EPOCHS, seed=seed,
                device="cpu", verbose=0,
                policy_kwargs=dict(net_arch=dict(pi=list(POLICY_DIMS), vf=list(VALUE_DIMS)),
                                   activation_fn=torch.nn.ReLU, log_std_init=LOG_STD_INIT))
    model.learn(total_timesteps=timesteps)
    seconds = time.perf_counter() - start
    linears = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    linears.append(model.policy.action_net)
    layers = numpy_layers([(m.weight, m.bias) for m in linears])
    mean, var = venv.obs_rms.mean.copy(), venv.obs_rms.var.copy()
    assert venv.epsilon == 1e-8 and venv.clip_obs == 10.0  # the transform normalize_with applies
    returns = deterministic_returns(layers, lambda s: normalize_with(s, mean, var), EVAL_SEED + seed)
    venv.close()
    return seconds, float(np.mean(returns))


def sb3_available() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=100_000)
    args = parser.parse_args()
    limit_compute_threads(1)  # for both implementations: one torch and one BLAS thread, train.py's default
    with_sb3 = sb3_available()
    if not with_sb3:
        print("stable-baselines3 is not installed (pip install -r benchmarks/requirements.txt): timing ours only")
    results: dict[str, dict[str, list[float]]] = {"ours": {"seconds": [], "return": []},
                                                  "sb3": {"seconds": [], "return": []}}
    update_shares = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:  # interleaved, so background load affects both alike
            seconds, ret, share = train_ours(seed, args.timesteps, Path(tmp))
            results["ours"]["seconds"].append(seconds)
            results["ours"]["return"].append(ret)
            update_shares.append(share)
            print(f"ours seed {seed}: {seconds:.1f} s, {args.timesteps / seconds:.0f} steps/s, return {ret:.1f} "
                  f"(update {100 * share:.0f}% of training time)", flush=True)
            if with_sb3:
                seconds, ret = train_sb3(seed, args.timesteps)
                results["sb3"]["seconds"].append(seconds)
                results["sb3"]["return"].append(ret)
                print(f"sb3  seed {seed}: {seconds:.1f} s, {args.timesteps / seconds:.0f} steps/s, return {ret:.1f}",
                      flush=True)

    summary: dict = {"env": ENV_ID, "timesteps": args.timesteps, "seeds": args.seeds, "torch_threads": 1}
    for name in ("ours", "sb3") if with_sb3 else ("ours",):
        r = results[name]
        total = sum(r["seconds"])
        summary[name] = {"wall_seconds": round(total, 2), "steps_per_second": round(len(args.seeds) * args.timesteps / total, 1),
                         "mean_return": round(float(np.mean(r["return"])), 2),
                         "returns": [round(x, 2) for x in r["return"]],
                         "wall_seconds_per_seed": [round(x, 2) for x in r["seconds"]]}
        print(f"{name}: {summary[name]['wall_seconds']} s total, {summary[name]['steps_per_second']} steps/s, "
              f"mean return {summary[name]['mean_return']} over seeds {args.seeds}")
    summary["ours"]["update_share"] = round(float(np.mean(update_shares)), 3)
    summary["speedup_vs_sb3"] = round(summary["sb3"]["wall_seconds"] / summary["ours"]["wall_seconds"], 3) \
        if with_sb3 else None
    summary["return_ratio_vs_sb3"] = round(summary["ours"]["mean_return"] / summary["sb3"]["mean_return"], 3) \
        if with_sb3 and summary["sb3"]["mean_return"] != 0 else None
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
