"""Count the linear regions every checkpoint of a run (or of each run of a sweep) passes through.

    python evaluate.py --run_id=RUNID --entity=USERNAME --project_name=deep_rl_regions
    python evaluate.py --sweep_id=SWEEPID --evaluate_random_trajectories --evaluate_random_lines
"""
from __future__ import annotations

import sys
from pathlib import Path

from utils.flags import Parser, add_bool_flag, available_cpus, check_device, positive_int
from utils.errors import UserError, run_cli


def build_parser() -> Parser:
    p = Parser(prog="evaluate.py", description=__doc__.split("\n")[0])
    p.add_argument("--run_id", default=None, help="evaluate this run (id or wandb run name)")
    p.add_argument("--sweep_id", default=None, help="evaluate every run of this sweep")
    p.add_argument("--checkpoints_dir", "--save_dir", dest="checkpoints_dir", default="checkpoints",
                   help="the run store (train.py's --save_dir)")
    p.add_argument("--results_dir", default="results", help="results go to <results_dir>/<run or sweep id>/<run_id>/")
    p.add_argument("--randomized_data_dir", default="randomized_data",
                   help="where randomized_metric_helper.py wrote the random lines and trajectories")
    add_bool_flag(p, "--add_stochastic", "also evaluate the stochastic policy (mean + Gaussian noise)")
    add_bool_flag(p, "--evaluate_random_trajectories", "metrics on random-action trajectories")
    add_bool_flag(p, "--evaluate_random_lines", "metrics on random lines through sampled states")
    add_bool_flag(p, "--log_locally", "accepted for the paper's commands; results are always written locally")
    add_bool_flag(p, "--no_wandb_log", "do not log the evaluation to wandb")
    add_bool_flag(p, "--multi_processing", "evaluate checkpoints in parallel on all CPUs (= --workers=<CPUs>)")
    p.add_argument("--workers", type=positive_int, default=1, help="checkpoints evaluated in parallel processes")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where regions are counted")
    p.add_argument("--seed", type=int, default=0, help="env reset and action-noise seed of sampled episodes")
    add_bool_flag(p, "--overwrite", "re-evaluate epochs already in history.csv")
    add_bool_flag(p, "--no_plots", "skip the PNG figures")
    p.add_argument("--entity", default=None, help="wandb entity (for runs not in the local run store)")
    p.add_argument("--project_name", default="deep_rl_regions", help="wandb project")
    p.add_argument("--wandb_mode", choices=("online", "offline", "disabled"), default=None,
                   help="default: online when logged in, else offline")
    add_bool_flag(p, "--quiet", "no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.run_id) == bool(args.sweep_id):
        raise UserError("pass exactly one of --run_id=RUN_ID or --sweep_id=SWEEP_ID")
    check_device(args.device)
    from utils.jobs.evaluate import EvalOptions, evaluate
    from utils.runs.store import check_writable_dir
    from utils.runs.tracking import choose_mode

    check_writable_dir(Path(args.results_dir), "--results_dir")
    mode, notice = choose_mode(args.wandb_mode)
    wandb_log = not args.no_wandb_log and mode != "disabled"
    if notice and (wandb_log or args.entity):
        print(notice, file=sys.stderr)
    opts = EvalOptions(
        run_id=args.run_id, sweep_id=args.sweep_id, checkpoints_dir=Path(args.checkpoints_dir),
        results_dir=Path(args.results_dir), randomized_data_dir=Path(args.randomized_data_dir),
        add_stochastic=args.add_stochastic, random_trajectories=args.evaluate_random_trajectories,
        random_lines=args.evaluate_random_lines, device=args.device,
        workers=available_cpus() if args.multi_processing else args.workers, seed=args.seed,
        overwrite=args.overwrite, wandb_mode=mode, wandb_log=wandb_log, entity=args.entity,
        project=args.project_name, plots=not args.no_plots)
    import torch
    torch.set_num_threads(1)
    report = evaluate(opts, wandb_online=(mode == "online"), progress=not args.quiet)
    for r in report.runs:
        print(f"run {r.run_id}: {r.evaluated} checkpoints evaluated, {r.skipped} already done -> {r.out_dir}")
        for f in r.files:
            print(f"  {f}")
        if r.wandb_url:
            print(f"  wandb: {r.wandb_url}")
    for f in report.sweep_files:
        print(f"sweep: {f}")
    if report.bad_checkpoints:
        bad = report.bad_checkpoints[0]
        more = f" (and {len(report.bad_checkpoints) - 1} more)" if len(report.bad_checkpoints) > 1 else ""
        raise UserError(f"checkpoint {bad['file']}{more} is unreadable and was skipped "
                        f"({bad['error'].split(';')[0][:160]}); the other epochs were evaluated and it is listed "
                        f"under bad_checkpoints in summary.json: restore or delete it, then re-run")
    return 0


if __name__ == "__main__":
    run_cli(main)
