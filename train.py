"""Train a PPO policy with ReLU MLPs and write every checkpoint to the local run store (and wandb).

    python train.py --env=HalfCheetah-v2 --total_timesteps=100000 --nsteps=1000 --policy_dims=c16,16 \
        --value_dims=c32,32 --save_dir=checkpoints --project_name=deep_rl_regions
"""
from __future__ import annotations

import os
import sys

from utils.flags import Parser, add_bool_flag, available_cpus, non_negative_int, positive_int
from utils.errors import run_cli


def build_parser() -> Parser:
    p = Parser(prog="train.py", description=__doc__.split("\n")[0])
    p.add_argument("--env", default="Car1DEnv-v1", help="gymnasium id; legacy -v2/-v3 MuJoCo ids map to -v5")
    p.add_argument("--policy_dims", default="c64,64", help="policy hidden widths, e.g. c16,16 or 16,16")
    p.add_argument("--value_dims", default="c64,64", help="value hidden widths")
    p.add_argument("--total_timesteps", type=positive_int, default=1_000_000)
    p.add_argument("--nsteps", "--n_steps", dest="nsteps", type=positive_int, default=1000,
                   help="steps per env per iteration (SB3's n_steps)")
    p.add_argument("--n_envs", type=positive_int, default=None, help="parallel envs (default: CPUs available)")
    p.add_argument("--batch_size", type=positive_int, default=64)
    p.add_argument("--n_epochs", type=positive_int, default=10)
    p.add_argument("--learning_rate", type=float, default=3e-4)
    p.add_argument("--log_std_init", type=float, default=-2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval_every", type=non_negative_int, default=1, help="iterations between evaluations (0: never)")
    p.add_argument("--eval_episodes", type=positive_int, default=5)
    p.add_argument("--save_every", type=positive_int, default=1, help="iterations between checkpoints")
    p.add_argument("--obs_norm", choices=("running", "frozen", "off"), default="running")
    p.add_argument("--norm_warmup_steps", type=non_negative_int, default=1000,
                   help="random-action steps that seed the observation statistics")
    p.add_argument("--stop_at_return", type=float, default=None,
                   help="stop early once the mean deterministic eval return exceeds this")
    p.add_argument("--pretrained_path", default=None, help="start from this checkpoint's policy and value weights")
    p.add_argument("--stats_path", default=None, help="start from this checkpoint's normalization statistics")
    p.add_argument("--save_dir", default="checkpoints", help="the run store")
    p.add_argument("--run_id", default=None, help="id for the new run (default: a fresh random id)")
    p.add_argument("--resume", default=None, metavar="RUN_ID_OR_DIR", help="continue a killed run")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--vec_env", choices=("auto", "inprocess", "subprocess"), default="auto",
                   help="where envs step; auto = in this process (fastest for MuJoCo-sized envs on few cores)")
    p.add_argument("--torch_threads", type=positive_int, default=1,
                   help="torch intra-op threads; 1 is fastest for small MLPs")
    add_bool_flag(p, "--debug", "single process: envs step in this process")
    p.add_argument("--entity", default=None, help="wandb entity")
    p.add_argument("--project_name", default="deep_rl_regions", help="wandb project")
    p.add_argument("--run_name", default=None, help="wandb display name")
    p.add_argument("--sweep_id", default=None, help="sweep this run belongs to (set by sweep.py / wandb agents)")
    p.add_argument("--wandb_mode", choices=("online", "offline", "disabled"), default=None,
                   help="default: online when logged in, else offline")
    add_bool_flag(p, "--unobserve", "the paper's flag: log to wandb offline")
    add_bool_flag(p, "--quiet", "no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch
    from utils.jobs.train import TrainOptions, launch_training

    torch.set_num_threads(args.torch_threads)
    n_envs = args.n_envs or available_cpus()
    opts = TrainOptions.from_namespace(args)
    opts.n_envs = n_envs
    if opts.run_id is None and not opts.resume and os.environ.get("WANDB_SWEEP_ID"):
        opts.run_id = os.environ.get("WANDB_RUN_ID")  # a wandb agent chose the run id; keep local and wandb ids equal
    result = launch_training(opts, notify=lambda line: print(line, file=sys.stderr),
                             wandb_sweep_id=os.environ.get("WANDB_SWEEP_ID"))
    print(result.report)
    return 0


if __name__ == "__main__":
    run_cli(main)
