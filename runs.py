"""Browse the run store: every run and sweep at a glance, or one run in full.

    python runs.py                      # runs and sweeps in ./checkpoints
    python runs.py RUN_ID               # one run: status, progress, flags, files, what to run next
    python runs.py --json               # the same as JSON, for scripts
"""
from __future__ import annotations

import json

from utils.errors import run_cli
from utils.flags import parse_settings
from utils.settings import BrowseSettings

DESCRIPTION = __doc__.split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(BrowseSettings, argv, "runs.py", DESCRIPTION)
    from dataclasses import asdict

    from utils.jobs.browse import describe_run, format_listing, format_run, list_store

    if settings.run_id:
        described = describe_run(settings.checkpoints_dir, settings.results_dir, settings.run_id)
        print(json.dumps(described, indent=2, sort_keys=True) if settings.json else format_run(described))
    else:
        listing = list_store(settings.checkpoints_dir, settings.results_dir)
        print(json.dumps(asdict(listing), indent=2, sort_keys=True) if settings.json else format_listing(listing))
    return 0


if __name__ == "__main__":
    run_cli(main)
