"""Count the linear regions every checkpoint of a run (or of each run of a sweep) passes through.

    python evaluate.py --run_id=RUNID --entity=USERNAME --project_name=deep_rl_regions
    python evaluate.py --sweep_id=SWEEPID --evaluate_random_trajectories --evaluate_random_lines
"""
from __future__ import annotations

import sys

from utils.errors import run_cli
from utils.flags import parse_settings
from utils.settings import EvaluateSettings

DESCRIPTION = __doc__.split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(EvaluateSettings, argv, "evaluate.py", DESCRIPTION)
    import torch

    from utils.jobs.evaluate import evaluate, plan_evaluation

    def notify(line: str) -> None:
        print(line, file=sys.stderr)

    plan = plan_evaluation(settings)
    torch.set_num_threads(1)
    report = evaluate(plan, progress=not settings.quiet, notify=notify)
    for r in report.runs:
        print(f"run {r.run_id}: {r.evaluated} checkpoints evaluated, {r.skipped} already done -> {r.out_dir}")
        for f in r.files:
            print(f"  {f}")
        if r.wandb_url:
            print(f"  wandb: {r.wandb_url}")
    for f in report.sweep_files:
        print(f"sweep: {f}")
    report.raise_for_unreadable()
    return 0


if __name__ == "__main__":
    run_cli(main)
