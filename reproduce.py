"""Check the paper's findings: a report (REPORT.md, report.html, findings.json, figures) from evaluated sweeps, or
from a preset's study (trained, given random data and evaluated first; a re-run continues where it stopped).

    python reproduce.py --preset=quick --workers=2
    python reproduce.py --sweep_id SWEEP_ID [SWEEP_ID ...] --report_dir=report
"""
from __future__ import annotations

import sys

from utils.errors import run_cli
from utils.flags import parse_settings
from utils.settings import ReproduceSettings

DESCRIPTION = __doc__.split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(ReproduceSettings, argv, "reproduce.py", DESCRIPTION)
    import torch

    from utils.jobs.reproduce import report

    torch.set_num_threads(1)  # tiny networks: one thread is fastest (docs/design.md, "Pitfalls")
    result = report(settings, notify=lambda line: print(line, file=sys.stderr, flush=True),
                    progress=not settings.quiet)
    for env, verdicts in result.verdicts.items():
        print(f"{env}: " + "; ".join(f"finding {k}: {v}" for k, v in enumerate(verdicts, start=1)))
    print(f"report: {result.report_dir / 'REPORT.md'}, {result.report_dir / 'report.html'}, "
          f"{result.report_dir / 'findings.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
