"""Run a grid (or random search) of train.py configurations from a wandb-format sweep file.

    python sweep.py sweeps/car1d_widths.yaml --workers 2
    python sweep.py --resume SWEEP_ID --workers 2
"""
from __future__ import annotations

import sys
from pathlib import Path

from utils.errors import run_cli
from utils.flags import parse_settings
from utils.progress import progress_bar
from utils.settings import SweepSettings

DESCRIPTION = __doc__.split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(SweepSettings, argv, "sweep.py", DESCRIPTION)
    from utils.jobs.sweep import open_sweep, prepare_sweep, run_state, run_sweep, sweep_configurations

    if settings.dry_run:  # the configurations (with --resume: the recorded ones and what each run needs)
        if settings.resume:
            record = prepare_sweep(settings)
            for i, config in enumerate(record.configs):
                state = run_state(Path(settings.save_dir), record.run_ids[i])
                print(f"{i:3d} {record.run_ids[i]} {state:<9} " + " ".join(f"--{k}={v}" for k, v in config.items()))
            return 0
        _, configs = sweep_configurations(settings)
        for i, config in enumerate(configs):
            print(f"{i:3d} " + " ".join(f"--{k}={v}" for k, v in config.items()))
        return 0
    with open_sweep(settings) as record:
        print(f"sweep {record.sweep_id}: {len(record.configs)} runs, {settings.workers} at a time, "
              f"run store {settings.save_dir}")
        bar = progress_bar(len(record.configs), f"sweep {record.sweep_id}", "run", enabled=not settings.quiet,
                           leave=True)

        def on_update(outcome, counts):
            bar.set_postfix(done=counts["done"], running=counts["running"], failed=counts["failed"])
            if outcome is not None:
                if outcome.status == "failed":
                    bar.write(f"run {outcome.run_id} failed (exit {outcome.returncode}); log: {outcome.log_path}")
                bar.update(1)

        outcomes = run_sweep(record, settings, on_update)
        bar.close()
    print(f"{'run':<16} {'status':<11} configuration")
    for o in outcomes:
        config = " ".join(f"{k}={v}" for k, v in record.configs[o.index].items())
        print(f"{o.run_id:<16} {o.status:<11} {config}")
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        print(f"failed: {o.run_id}, log {o.log_path}", file=sys.stderr)
    unfinished = [o for o in outcomes if o.status not in ("finished", "skipped")]
    if any(o.status == "interrupted" for o in outcomes):
        print(f"interrupted: continue with python sweep.py --resume={record.sweep_id} --save_dir={settings.save_dir}")
        return 130
    if unfinished:  # evaluating now would miss them: say what is left first
        busy = sum(o.status == "busy" for o in unfinished)
        print(f"{len(unfinished)} runs are not finished ({busy} being trained by another process); when they are: "
              f"python evaluate.py --sweep_id={record.sweep_id} --checkpoints_dir={settings.save_dir}")
    else:
        print(f"next: python evaluate.py --sweep_id={record.sweep_id} --checkpoints_dir={settings.save_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)
