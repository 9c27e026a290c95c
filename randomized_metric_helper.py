"""Write the random lines and random-action trajectories that evaluate.py's random metrics use (.npz, seeded).

    python randomized_metric_helper.py --sweep_id=SWEEPID
"""
from __future__ import annotations

from pathlib import Path

from utils.flags import Parser, positive_int
from utils.errors import UserError, run_cli


def build_parser() -> Parser:
    p = Parser(prog="randomized_metric_helper.py", description=__doc__.split("\n")[0])
    p.add_argument("--run_id", default=None, help="random data for this run")
    p.add_argument("--sweep_id", default=None, help="random data shared by every run of this sweep")
    p.add_argument("--save_dir", default="randomized_data",
                   help="where the random data are written (<save_dir>/<id>/); evaluate.py's --randomized_data_dir")
    p.add_argument("--checkpoints_dir", default="checkpoints", help="the run store (train.py's --save_dir)")
    p.add_argument("--num_random_lines", type=positive_int, default=100)
    p.add_argument("--num_random_trajectories", type=positive_int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled states and random-action episodes")
    p.add_argument("--entity", default=None, help="wandb entity (for runs not in the local run store)")
    p.add_argument("--project_name", default="deep_rl_regions", help="wandb project")
    p.add_argument("--wandb_mode", choices=("online", "offline", "disabled"), default=None,
                   help="wandb is only used to find runs that are not in the local run store")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.run_id) == bool(args.sweep_id):
        raise UserError("pass exactly one of --run_id=RUN_ID or --sweep_id=SWEEP_ID")
    from utils.jobs.evaluate import EvalOptions, resolve_runs
    from utils.analysis.random_data import generate_random_data
    from utils.runs.store import check_writable_dir
    from utils.runs.tracking import choose_mode

    check_writable_dir(Path(args.save_dir), "--save_dir")
    mode, _ = choose_mode(args.wandb_mode)
    opts = EvalOptions(run_id=args.run_id, sweep_id=args.sweep_id, checkpoints_dir=Path(args.checkpoints_dir),
                       entity=args.entity, project=args.project_name)
    runs = resolve_runs(opts, wandb_online=(mode == "online"))
    written = generate_random_data([r.run for r in runs], Path(args.save_dir), opts.result_id,
                                   num_lines=args.num_random_lines, num_trajectories=args.num_random_trajectories,
                                   seed=args.seed)
    print(f"random data for {len(runs)} run(s) of {opts.result_id}:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
