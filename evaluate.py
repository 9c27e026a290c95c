"""Count the linear regions every checkpoint of a run (or of each run of a sweep) passes through.

    python evaluate.py --run_id=RUNID --entity=USERNAME --project_name=deep_rl_regions
    python evaluate.py --sweep_id=SWEEPID --evaluate_random_trajectories --evaluate_random_lines
"""
from __future__ import annotations

import sys
from pathlib import Path

from utils.errors import UserError, run_cli
from utils.flags import build_parser as _build_parser, parse_settings
from utils.settings import EvaluateSettings

DESCRIPTION = __doc__.split("\n")[0]


def build_parser():
    return _build_parser(EvaluateSettings, "evaluate.py", DESCRIPTION)


def main(argv: list[str] | None = None) -> int:
    args = parse_settings(EvaluateSettings, argv, "evaluate.py", DESCRIPTION)
    from utils.flags import available_cpus, check_device

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
        add_stochastic=args.add_stochastic, random_trajectories=args.random_trajectories,
        random_lines=args.random_lines, device=args.device,
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
        raise UserError(f"checkpoint {bad.file}{more} is unreadable and was skipped "
                        f"({bad.error.split(';')[0][:160]}); the other epochs were evaluated and it is listed "
                        f"under bad_checkpoints in summary.json: restore or delete it, then re-run")
    return 0


if __name__ == "__main__":
    run_cli(main)
