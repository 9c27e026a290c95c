"""Run a grid (or random search) of train.py configurations from a wandb-format sweep file.

    python sweep.py sweeps/car1d_widths.yaml --workers 2
    python sweep.py --resume SWEEP_ID --workers 2
"""
from __future__ import annotations

import sys

from utils.flags import Parser, add_bool_flag, positive_int
from utils.errors import UserError, run_cli


def build_parser() -> Parser:
    p = Parser(prog="sweep.py", description=__doc__.split("\n")[0])
    p.add_argument("file", nargs="?", help="sweep YAML in the wandb sweep format")
    p.add_argument("--workers", type=int, default=1, help="runs trained at the same time (>= 1)")
    p.add_argument("--count", type=positive_int, default=None, help="configurations to draw for method: random")
    p.add_argument("--seed", type=int, default=0, help="seed for method: random")
    p.add_argument("--save_dir", default="checkpoints", help="the run store (as train.py's --save_dir)")
    p.add_argument("--sweep_id", default=None, help="id for the new sweep (default: a fresh random id)")
    p.add_argument("--resume", default=None, metavar="SWEEP_ID", help="continue an interrupted sweep")
    p.add_argument("--wandb_mode", choices=("online", "offline", "disabled"), default=None,
                   help="passed to every run (default: train.py's: online when logged in, else offline)")
    add_bool_flag(p, "--dry_run", "print the configurations and exit")
    add_bool_flag(p, "--quiet", "no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        raise UserError(f"--workers={args.workers} must be at least 1; use --workers=1 for one run at a time")
    if bool(args.file) == bool(args.resume):
        raise UserError("give either a sweep FILE or --resume=SWEEP_ID (not both, not neither)")
    from tqdm import tqdm

    import train
    from utils.runs.store import check_writable_dir
    from utils.jobs.sweep import create_sweep, load_sweep, run_sweep
    from utils.runs.sweep_files import expand_grid, load_sweep_file, sample_random

    if args.resume:
        record = load_sweep(args.save_dir, args.resume)
    else:
        valid = {a.dest for a in train.build_parser()._actions if a.option_strings} | {"n_steps"}
        spec = load_sweep_file(args.file, valid)
        if spec.method == "random":
            configs = sample_random(spec, args.count or int(spec.raw.get("run_cap", 10)), args.seed)
        else:
            configs = expand_grid(spec)
        if args.dry_run:
            for i, config in enumerate(configs):
                print(f"{i:3d} " + " ".join(f"--{k}={v}" for k, v in config.items()))
            return 0
        check_writable_dir(args.save_dir, "--save_dir")
        extra = [f"--wandb_mode={args.wandb_mode}"] if args.wandb_mode else []
        record = create_sweep(args.save_dir, args.file, spec.method, configs, extra, args.sweep_id)
    print(f"sweep {record.sweep_id}: {len(record.configs)} runs, {args.workers} at a time, run store {args.save_dir}")
    bar = tqdm(total=len(record.configs), unit="run", disable=args.quiet, desc=f"sweep {record.sweep_id}")

    def on_update(outcome, counts):
        if outcome is not None:
            bar.update(1)
            if outcome.status == "failed":
                bar.write(f"run {outcome.run_id} failed (exit {outcome.returncode}); log: {outcome.log_path}")
        bar.set_postfix(done=counts["done"], running=counts["running"], failed=counts["failed"])

    outcomes = run_sweep(record, args.save_dir, args.workers, on_update)
    bar.close()
    print(f"{'run':<16} {'status':<9} configuration")
    for o in outcomes:
        config = " ".join(f"{k}={v}" for k, v in record.configs[o.index].items())
        print(f"{o.run_id:<16} {o.status:<9} {config}")
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        print(f"failed: {o.run_id}, log {o.log_path}", file=sys.stderr)
    print(f"next: python evaluate.py --sweep_id={record.sweep_id} --checkpoints_dir={args.save_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)
