"""Import a Stable-Baselines3 policy (model zip, rl-zoo3 folder, or a run of the paper's code) as a run.

    python import_policy.py --path=model.zip --stats_path=vecnormalize.pkl --env=HalfCheetah-v5
    python import_policy.py --path=logs/ppo/HalfCheetah-v3_1               # rl-zoo3 folder (env from args.yml)
    python import_policy.py --path=SAVE_DIR/PROJECT_RUNID --env=envs:Car1DEnv-v1 --sweep_id=paper
"""
from __future__ import annotations

import sys

from utils.errors import run_cli
from utils.flags import parse_settings
from utils.settings import ImportSettings

DESCRIPTION = __doc__.split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(ImportSettings, argv, "import_policy.py", DESCRIPTION)
    from utils.jobs.import_policy import plan_import, run_import

    plan = plan_import(settings, notify=lambda line: print(line, file=sys.stderr))
    report = run_import(plan, settings)
    print(f"imported {report.kind} as run {report.run_id} ({report.checkpoints} checkpoints, {report.env_id}) "
          f"-> {report.root}")
    print(f"next: python evaluate.py --run_id={report.run_id} --checkpoints_dir={settings.checkpoints_dir}")
    return 0


if __name__ == "__main__":
    run_cli(main)
