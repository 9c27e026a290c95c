"""Train a PPO policy with ReLU MLPs and write every checkpoint to the local run store (and wandb).

    python train.py --env=HalfCheetah-v2 --total_timesteps=100000 --nsteps=1000 --policy_dims=c16,16 \
        --value_dims=c32,32 --save_dir=checkpoints --project_name=deep_rl_regions
"""
from __future__ import annotations

import os
import sys

from utils.errors import run_cli
from utils.flags import given_flags, parse_settings
from utils.settings import TrainSettings

DESCRIPTION = __doc__.split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(TrainSettings, argv, "train.py", DESCRIPTION)
    from utils.jobs.train import limit_compute_threads, prepare_run, train

    limit_compute_threads(settings.torch_threads)
    plan = prepare_run(settings, os.environ, given=given_flags(TrainSettings, argv))
    result = train(plan, notify=lambda line: print(line, file=sys.stderr))
    print(result.report)
    return 0


if __name__ == "__main__":
    run_cli(main)
