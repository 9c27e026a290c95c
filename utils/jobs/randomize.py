"""Write the random lines and random-action trajectories of a run or a sweep (randomized_metric_helper.py's library).

The runs are found like evaluation finds them (local run store first, else wandb); the data are written under
`<randomized_data_dir>/<sweep or run id>/`, one pair of files per env, where evaluate.py's --randomized_data_dir reads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from utils.analysis.random_data import generate_random_data
from utils.analysis.sources import ResolvedRun, default_wandb_api, resolve_runs
from utils.runs.store import check_creatable_dir
from utils.runs.tracking import choose_mode
from utils.settings import RandomizeSettings


@dataclass(frozen=True)
class RandomDataReport:
    """What was written: for which runs, under which id, and the files."""

    data_id: str
    runs: tuple[ResolvedRun, ...]
    files: tuple[Path, ...]


def write_random_data(settings: RandomizeSettings, *, api_factory: Callable[[], Any] = default_wandb_api,
                      progress: Callable[[str], None] = lambda line: None) -> RandomDataReport:
    """Random line points and random-action trajectories for every env among the runs, seeded; returns the files."""
    check_creatable_dir(settings.randomized_data_dir, "--randomized_data_dir")  # alias --save_dir; made when written
    # wandb only finds runs missing locally; when it cannot be online, resolve_runs' error says so
    mode, _ = choose_mode(settings.wandb_mode)
    runs = resolve_runs(settings.checkpoints_dir, run_id=settings.run_id, sweep_id=settings.sweep_id,
                        entity=settings.entity, project=settings.project_name, wandb_online=(mode == "online"),
                        api_factory=api_factory, env=settings.env, notify=progress)
    files = generate_random_data([r.run for r in runs], settings.randomized_data_dir, settings.result_id,
                                 num_lines=settings.num_random_lines, num_trajectories=settings.num_random_trajectories,
                                 seed=settings.seed, progress=progress)
    return RandomDataReport(settings.result_id, tuple(runs), tuple(files))
