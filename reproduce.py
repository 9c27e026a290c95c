"""Check the paper's findings: a report (REPORT.md, report.html, findings.json, figures) from evaluated sweeps.

    python reproduce.py --sweep_id SWEEP_ID [SWEEP_ID ...] --report_dir=report
    python reproduce.py --preset=quick      (not built yet: refused with one line)
"""
from __future__ import annotations

from utils.errors import run_cli
from utils.flags import parse_settings
from utils.settings import ReproduceSettings

DESCRIPTION = __doc__.split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(ReproduceSettings, argv, "reproduce.py", DESCRIPTION)
    from utils.jobs.reproduce import build_report, plan_report

    result = build_report(plan_report(settings))
    for env, verdicts in result.verdicts.items():
        print(f"{env}: " + "; ".join(f"finding {k}: {v}" for k, v in enumerate(verdicts, start=1)))
    print(f"report: {result.report_dir / 'REPORT.md'}, {result.report_dir / 'report.html'}, "
          f"{result.report_dir / 'findings.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
