"""Draw the exact linear regions of a policy on a 2-D plane of its state space, and how they evolve over training.

    python visualize_hd.py --env=HalfCheetah-v2 --policy_path=checkpoints/RUN/checkpoints/000010.pt --save_path=plots
    python visualize_hd.py --env=envs:Car1DEnv-v1 --policy_path=checkpoints/RUN/best.pt --save_path=plots
    python visualize_hd.py --run_id=RUN --all_checkpoints --save_path=plots
    python visualize_hd.py --compare RUN_A RUN_B RUN_C --all_checkpoints --save_path=plots
"""
from __future__ import annotations

import sys

from utils.errors import run_cli
from utils.flags import parse_settings
from utils.settings import VisualizeSettings

DESCRIPTION = __doc__.split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(VisualizeSettings, argv, "visualize_hd.py", DESCRIPTION)
    import torch

    from utils.jobs.visualize import plan_job, run_job

    torch.set_num_threads(1)
    job = plan_job(settings, notify=lambda line: print(line, file=sys.stderr))
    result = run_job(job)
    for line in result.summary:
        print(line)
    for path in result.paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
