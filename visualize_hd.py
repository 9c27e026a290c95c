"""Draw the exact linear regions of a policy on a 2-D plane of its state space, and how they evolve over training.

    python visualize_hd.py --env=HalfCheetah-v2 --policy_path=checkpoints/RUN/checkpoints/000010.pt --save_path=plots
    python visualize_hd.py --env=envs:Car1DEnv-v1 --policy_path=checkpoints/RUN/best.pt --save_path=plots
    python visualize_hd.py --run_id=RUN --all_checkpoints --save_path=plots
    python visualize_hd.py --compare RUN_A RUN_B RUN_C --all_checkpoints --save_path=plots
"""
from __future__ import annotations

import sys
from pathlib import Path

from utils.flags import Parser, add_bool_flag, positive_int
from utils.errors import UserError, run_cli

FORMATS = ("png", "pdf", "svg")


def build_parser() -> Parser:
    p = Parser(prog="visualize_hd.py", description=__doc__.split("\n")[0])
    p.add_argument("--env", default=None, help="gymnasium id (default: the checkpoint's env); legacy -v2/-v3 ids map to -v5")
    p.add_argument("--policy_path", default=None, help="checkpoint (.pt) to draw")
    p.add_argument("--stats_path", default=None,
                   help="checkpoint whose normalization statistics override the drawn checkpoints' own")
    p.add_argument("--save_path", default="plots", help="output directory (created when missing)")
    p.add_argument("--run_id", default=None, help="draw a run of the run store (its best checkpoint, or all of them)")
    p.add_argument("--run_dir", default=None, help="like --run_id, given the run's directory")
    p.add_argument("--checkpoints_dir", "--save_dir", dest="checkpoints_dir", default="checkpoints",
                   help="the run store that --run_id and --compare look in")
    add_bool_flag(p, "--all_checkpoints", "every checkpoint of the run on the same plane: animated GIF + contact sheet")
    p.add_argument("--compare", nargs="+", default=None, metavar="RUN",
                   help="runs (ids or directories) drawn side by side, on the same plane")
    p.add_argument("--color", choices=("region", "action", "slope"), default="region",
                   help="region: a stable colour per activation pattern; action: ||action mean||; "
                        "slope: ||Jacobian of the action mean||")
    p.add_argument("--format", choices=FORMATS, default="png", help="image format (the animation is always a GIF)")
    p.add_argument("--num_episodes", type=positive_int, default=10,
                   help="stochastic episodes of the best policy to draw the three states from (high-D envs)")
    p.add_argument("--seed", type=int, default=0, help="seeds the episodes and the choice of the three states")
    p.add_argument("--scale", type=float, default=1.25, help="domain square side / circumcircle diameter (high-D)")
    p.add_argument("--xlim", default=None, metavar="MIN,MAX", help="first state variable's range (2-D state spaces)")
    p.add_argument("--ylim", default=None, metavar="MIN,MAX", help="second state variable's range (2-D state spaces)")
    p.add_argument("--dpi", type=positive_int, default=150, help="raster resolution (png and the GIF)")
    p.add_argument("--frame_ms", type=positive_int, default=700, help="GIF frame duration in milliseconds")
    add_bool_flag(p, "--unclipped", "partition the bare network, ignoring the policy's +-10 observation clip")
    p.add_argument("--device", default="cpu", help="cpu or cuda, for the partition")
    add_bool_flag(p, "--quiet", "no progress bar")
    return p


def parse_limits(text: str | None, flag: str) -> tuple[float, float] | None:
    """'MIN,MAX' -> (min, max) with min < max."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        lo, hi = (float(v) for v in parts)
    except ValueError:
        raise UserError(f"{flag}={text} is not MIN,MAX; pass two numbers such as {flag}=-50,150") from None
    if not (lo < hi) or not all(map(lambda v: abs(v) < float("inf"), (lo, hi))):
        raise UserError(f"{flag}={text} needs finite MIN < MAX; pass e.g. {flag}=-50,150")
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.scale > 0:
        raise UserError(f"--scale={args.scale} must be positive")
    if args.run_dir and args.run_id:
        raise UserError("pass either --run_id or --run_dir, not both")
    xlim, ylim = parse_limits(args.xlim, "--xlim"), parse_limits(args.ylim, "--ylim")
    import torch

    from utils.flags import check_device
    from utils.jobs.visualize import VisualizeRequest, plan_job, run_job

    torch.set_num_threads(1)
    check_device(args.device)
    request = VisualizeRequest(
        env=args.env, policy_path=args.policy_path, stats_path=args.stats_path, save_path=Path(args.save_path),
        run=args.run_dir or args.run_id, compare=args.compare, checkpoints_dir=Path(args.checkpoints_dir),
        all_checkpoints=args.all_checkpoints, color=args.color, fmt=args.format, num_episodes=args.num_episodes,
        seed=args.seed, scale=args.scale, xlim=xlim, ylim=ylim, dpi=args.dpi, frame_ms=args.frame_ms,
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
