"""Write the random lines and random-action trajectories that evaluate.py's random metrics use (.npz, seeded).

    python randomized_metric_helper.py --sweep_id=SWEEPID
"""
from __future__ import annotations

import sys

from utils.errors import run_cli
from utils.flags import parse_settings
from utils.settings import RandomizeSettings

DESCRIPTION = __doc__.split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(RandomizeSettings, argv, "randomized_metric_helper.py", DESCRIPTION)
    from utils.jobs.randomize import write_random_data

    report = write_random_data(settings, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"random data for {len(report.runs)} run(s) of {report.data_id}:")
    for path in report.files:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
