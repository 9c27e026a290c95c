"""Write the random lines and random-action trajectories that evaluate.py's random metrics use (.npz, seeded).

    python randomized_metric_helper.py --sweep_id=SWEEPID
"""
from __future__ import annotations

from pathlib import Path

from utils.errors import run_cli
from utils.flags import build_parser as _build_parser, parse_settings
from utils.settings import RandomizeSettings

DESCRIPTION = __doc__.split("\n")[0]


def build_parser():
    return _build_parser(RandomizeSettings, "randomized_metric_helper.py", DESCRIPTION)


def main(argv: list[str] | None = None) -> int:
    args = parse_settings(RandomizeSettings, argv, "randomized_metric_helper.py", DESCRIPTION)
    from utils.analysis.sources import resolve_runs
    from utils.analysis.random_data import generate_random_data
    from utils.runs.store import check_writable_dir
    from utils.runs.tracking import choose_mode

    check_writable_dir(Path(args.save_dir), "--save_dir")
    mode, _ = choose_mode(args.wandb_mode)
    runs = resolve_runs(args.checkpoints_dir, run_id=args.run_id, sweep_id=args.sweep_id, entity=args.entity,
                        project=args.project_name, wandb_online=(mode == "online"))
    written = generate_random_data([r.run for r in runs], Path(args.save_dir), args.result_id,
                                   num_lines=args.num_random_lines, num_trajectories=args.num_random_trajectories,
                                   seed=args.seed)
    print(f"random data for {len(runs)} run(s) of {args.result_id}:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
