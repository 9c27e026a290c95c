"""import_policy.py's library: read an SB3 model / rl-zoo3 folder / paper-layout run (utils.analysis.imported),
check it against its env, then write it as a new run of the run store. Nothing is written before every file has
been read and checked."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from utils.analysis.imported import ImportSource, check_env, read_import_source, write_imported_run
from utils.errors import UserError
from utils.runs.store import check_creatable_dir, check_new_run_id, create_run, new_run_id
from utils.settings import ImportSettings


@dataclass(frozen=True)
class ImportPlan:
    source: ImportSource
    requested_env: str
    env_id: str
    obs_dim: int
    act_dim: int
    run_id: str


@dataclass(frozen=True)
class ImportReport:
    run_id: str
    root: Path
    kind: str
    checkpoints: int
    env_id: str


def plan_import(settings: ImportSettings, notify: Callable[[str], None] = lambda line: None) -> ImportPlan:
    """Read and check everything (files, env, the new run id); writes nothing."""
    check_creatable_dir(settings.checkpoints_dir, "--checkpoints_dir")
    stats = Path(settings.stats_path) if settings.stats_path else None
    source = read_import_source(Path(settings.path), stats, notify)
    env = settings.env or source.env_hint
    if not settings.env and env and ":" in env:  # MODULE:ID imports MODULE: only on the user's own word
        raise UserError(f"{settings.path} names its env as {env!r}, which would import a module; pass --env=ID "
                        f"yourself if you trust it")
    if not env:
        raise UserError(f"{settings.path} does not record its env; pass --env=ID (e.g. --env=HalfCheetah-v5 or "
                        f"--env=envs:Car1DEnv-v1)")
    env_id, obs_dim, act_dim = check_env(source, env)
    run_id = settings.run_id or new_run_id()
    check_new_run_id(settings.checkpoints_dir, run_id)
    return ImportPlan(source, env, env_id, obs_dim, act_dim, run_id)


def run_import(plan: ImportPlan, settings: ImportSettings) -> ImportReport:
    run = create_run(settings.checkpoints_dir, plan.run_id)
    write_imported_run(run, plan.source, plan.requested_env, plan.env_id, plan.obs_dim, plan.act_dim,
                       sweep_id=settings.sweep_id)
    return ImportReport(plan.run_id, run.root, plan.source.kind, len(plan.source.checkpoints), plan.env_id)
