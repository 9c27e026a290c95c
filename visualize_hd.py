"""Draw the exact linear regions of a policy on a 2-D plane of its state space, and how they evolve over training.

    python visualize_hd.py --env=HalfCheetah-v2 --policy_path=checkpoints/RUN/checkpoints/000010.pt --save_path=plots
    python visualize_hd.py --env=envs:Car1DEnv-v1 --policy_path=checkpoints/RUN/best.pt --save_path=plots
    python visualize_hd.py --run_id=RUN --all_checkpoints --save_path=plots
    python visualize_hd.py --compare RUN_A RUN_B RUN_C --all_checkpoints --save_path=plots
"""
from __future__ import annotations

import sys
from pathlib import Path

from utils.errors import run_cli
from utils.flags import build_parser as _build_parser, parse_settings
from utils.settings import VisualizeSettings

DESCRIPTION = __doc__.split("\n")[0]


def build_parser():
    return _build_parser(VisualizeSettings, "visualize_hd.py", DESCRIPTION)


def main(argv: list[str] | None = None) -> int:
    args = parse_settings(VisualizeSettings, argv, "visualize_hd.py", DESCRIPTION)
    import torch

    from utils.flags import check_device
    from utils.jobs.visualize import VisualizeRequest, plan_job, run_job

    torch.set_num_threads(1)
    check_device(args.device)
    request = VisualizeRequest(
        env=args.env, policy_path=args.policy_path, stats_path=args.stats_path, save_path=Path(args.save_path),
        run=args.run_dir or args.run_id, compare=args.compare, checkpoints_dir=Path(args.checkpoints_dir),
        all_checkpoints=args.all_checkpoints, color=args.color, fmt=args.format, num_episodes=args.num_episodes,
        seed=args.seed, scale=args.scale, xlim=args.xlim, ylim=args.ylim, dpi=args.dpi, frame_ms=args.frame_ms,
        clip_inputs=not args.unclipped, device=args.device)
    job = plan_job(request, notify=lambda line: print(line, file=sys.stderr))
    result = run_job(job, progress=not args.quiet)
    for line in result.summary:
        print(line)
    for path in result.paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
