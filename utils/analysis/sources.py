"""Where the runs to analyse come from: the local run store first, else the wandb public API.

A run found only in wandb is downloaded once into `<checkpoints_dir>/.wandb_cache/<run_id>/`, laid out like the
run store (run.json, checkpoints/, best.pt), so everything downstream reads local files only.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from models.checkpoint import read_checkpoint
from utils.analysis.imported import cached_paper_run, is_paper_run, paper_run_dir
from utils.errors import UserError
from utils.runs.io import write_bytes_atomic, write_json_atomic
from utils.runs.store import RunPaths, list_run_ids, read_run_info, run_info_problem
from utils.settings import PROJECT_NAME

WANDB_CACHE = ".wandb_cache"  # under the checkpoints dir: runs downloaded from wandb, laid out like the run store
DOWNLOAD_COMPLETE = ".download_complete"  # written last, so a cut-short download is never taken as complete


@dataclass(frozen=True)
class ResolvedRun:
    """A run ready to be read from disk: its paths, its run.json contents, and where it came from."""

    run: RunPaths
    info: dict
    source: str = "local"  # "local", "wandb" or "paper" (a paper-layout run imported into .paper_cache)

    @property
    def run_id(self) -> str:
        return self.run.run_id


def default_wandb_api():
    """The real wandb public API client (only called when wandb is online)."""
    import wandb
    return wandb.Api(timeout=30)


def local_run(checkpoints_dir: Path, run_id: str) -> ResolvedRun | None:
    """The run `run_id` of the local run store, or None when it has no run.json there."""
    root = Path(checkpoints_dir) / run_id
    if not (root / "run.json").is_file():
        return None
    run = RunPaths(root)
    return ResolvedRun(run, read_run_info(run))


def local_sweep_runs(checkpoints_dir: Path, sweep_id: str) -> list[ResolvedRun]:
    """The local runs whose run.json names `sweep_id` (as our sweep id or as a wandb sweep id), sorted by id."""
    found = []
    for run_id in list_run_ids(checkpoints_dir):
        run = RunPaths(Path(checkpoints_dir) / run_id)
        info = read_run_info(run)
        if sweep_id in (info.get("sweep_id"), info.get("wandb_sweep_id")):
            found.append(ResolvedRun(run, info))
    return found


def resolve_runs(checkpoints_dir: Path, *, run_id: str | None = None, sweep_id: str | None = None,
                 entity: str | None = None, project: str | None = PROJECT_NAME, wandb_online: bool = False,
                 api_factory: Callable[[], Any] = default_wandb_api,
                 shard: Callable[[list], list] = list, env: str | None = None,
                 notify: Callable[[str], None] = lambda line: None) -> list[ResolvedRun]:
    """The runs named by `run_id` or `sweep_id`: local run store first, then runs of the paper's code
    (`<checkpoints_dir>/<project>_<run id>/`, see `paper_runs`), else wandb (online, entity/project known).

    `shard` picks this worker's share of the runs (sorted by id) *before* any wandb download, so SLURM array tasks
    never download the same artifacts. `api_factory` returns an object with wandb.Api's `run`, `runs` and `sweep`.
    `env` is the env id of paper-layout runs (they do not record it); without it, wandb's run config is asked when
    online. `notify` gets one-line notices (skipped iteration folders).
    """
    if bool(run_id) == bool(sweep_id):
        raise UserError("pass exactly one of --run_id=RUN_ID or --sweep_id=SWEEP_ID")
    store = Path(checkpoints_dir)
    if run_id:
        local = local_run(store, run_id)
        if local is not None:
            return shard([local])
        paper = paper_run_dir(store, project or PROJECT_NAME, run_id)
        if paper is not None:
            found = [(run_id, paper)]
            env = env or (_wandb_env(api_factory, entity, project, run_id) if wandb_online else None)
            return [paper_run(store, root, rid, env, None, notify) for rid, root in shard(found)]
        what = f"run '{run_id}'"
    else:
        local_runs = local_sweep_runs(store, sweep_id)
        if local_runs:
            return shard(sorted(local_runs, key=lambda r: r.run_id))
        papers = paper_runs(store, project or PROJECT_NAME)
        if papers:
            return [paper_run(store, root, rid, env, sweep_id, notify) for rid, root in shard(papers)]
        what = f"sweep '{sweep_id}' (no run.json there has this sweep_id, no paper-layout run {project}_* either)"
    remote = _wandb_runs(api_factory, entity, project, run_id=run_id, sweep_id=sweep_id) if wandb_online else []
    if remote:
        return [download_wandb_run(r, store, sweep_id=sweep_id, entity=entity, project=project)
                for r in shard(sorted(remote, key=lambda r: r.id))]
    known = ", ".join(list_run_ids(store)[:10]) or "none"
    if wandb_online and entity:
        searched = f"nor in wandb {entity}/{project}"
    else:
        searched = "wandb not searched (needs wandb online and --entity)"
    raise UserError(f"no {what} in {store} (runs there: {known}); {searched}; "
                    f"pass an existing id or point --checkpoints_dir at the run store")


def paper_runs(checkpoints_dir: Path, project: str) -> list[tuple[str, Path]]:
    """(run id, folder) of every run of the paper's code in `checkpoints_dir`: folders `<project>_<run id>` laid out
    as the paper's code saves runs, sorted by id. With no run of ours naming the sweep, these are the runs
    `--sweep_id` evaluates (the paper's code keeps no sweep record on disk)."""
    store, prefix = Path(checkpoints_dir), f"{project}_"
    if not store.is_dir():
        return []
    return sorted((p.name[len(prefix):], p) for p in store.iterdir()
                  if p.is_dir() and p.name.startswith(prefix) and len(p.name) > len(prefix) and is_paper_run(p))


def paper_run(checkpoints_dir: Path, root: Path, run_id: str, env: str | None, sweep_id: str | None,
              notify: Callable[[str], None]) -> ResolvedRun:
    """A paper-layout run as a run of ours: imported (once per change of its files) into .paper_cache."""
    run = cached_paper_run(checkpoints_dir, root, run_id, env, sweep_id=sweep_id, notify=notify)
    return ResolvedRun(run, read_run_info(run), "paper")


def _wandb_env(api_factory: Callable[[], Any], entity: str | None, project: str | None, run_id: str) -> str | None:
    """The env id in a wandb run's config (the paper's code logs it as `env`), None when it cannot be asked."""
    if not (entity and project):
        return None
    try:
        config = dict(api_factory().run(f"{entity}/{project}/{run_id}").config)
    except Exception:  # offline, unknown run: the caller asks for --env
        return None
    env = config.get("env", config.get("env_id"))
    return env if isinstance(env, str) else None


def _wandb_runs(api_factory: Callable[[], Any], entity: str | None, project: str | None, *,
                run_id: str | None, sweep_id: str | None) -> list:
    """The wandb runs (API objects) with this id or display name, or of this sweep; [] without entity/project."""
    if not (entity and project):
        return []
    api = api_factory()
    path = f"{entity}/{project}"
    try:
        if run_id:
            try:
                return [api.run(f"{path}/{run_id}")]
            except Exception:  # not an id: try it as a display name
                return list(api.runs(path, filters={"display_name": run_id}))
        try:
            return list(api.sweep(f"{path}/{sweep_id}").runs)
        except Exception:  # our own sweeps (train.py --sweep_id) are a config field, not a wandb sweep
            return list(api.runs(path, filters={"config.sweep_id": sweep_id}))
    except Exception as err:
        raise UserError(f"wandb lookup of {run_id or sweep_id} in {path} failed ({type(err).__name__}: "
                        f"{str(err)[:100]}); check --entity/--project_name or evaluate from the local run store"
                        ) from None


def download_wandb_run(remote, checkpoints_dir: Path, *, sweep_id: str | None, entity: str | None,
                       project: str | None) -> ResolvedRun:
    """A wandb run as a local run: its run-store directory if there is one, else its checkpoints downloaded to the
    cache."""
    local = local_run(checkpoints_dir, remote.id)
    if local is not None:
        return local
    run = RunPaths(Path(checkpoints_dir) / WANDB_CACHE / remote.id)
    config = dict(remote.config)
    info = {"run_id": remote.id, "run_name": getattr(remote, "name", None), "env_id": config.get("env_id"),
            "obs_dim": config.get("obs_dim"), "act_dim": config.get("act_dim"), "config": config,
            "sweep_id": sweep_id or config.get("sweep_id"), "status": getattr(remote, "state", None),
            "source": f"wandb:{entity}/{project}/{remote.id}"}
    problem = run_info_problem(info)
    if problem is not None:  # checked before anything is downloaded
        raise UserError(f"wandb run {entity}/{project}/{remote.id} is not a train.py run this can evaluate (its "
                        f"record: {problem}); pass a run trained with train.py")
    if not (run.root / DOWNLOAD_COMPLETE).is_file():  # a download cut short is done again, never half used
        download_checkpoints(remote, run)
        write_json_atomic(run.root / DOWNLOAD_COMPLETE, {"checkpoints": len(run.list_checkpoints())})
    if not run.best.is_file() and run.list_checkpoints():
        write_bytes_atomic(run.best, best_checkpoint(run).read_bytes())
    write_json_atomic(run.run_json, info)
    return ResolvedRun(run, info, "wandb")


def download_checkpoints(remote, run: RunPaths) -> None:
    """Every checkpoint of the wandb run's `checkpoints-<run id>` artifact into run.checkpoints_dir (atomic files)."""
    run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"checkpoints-{remote.id}"
    for artifact in remote.logged_artifacts():
        if artifact.name.split(":")[0] != prefix:
            continue
        with tempfile.TemporaryDirectory(dir=run.root) as tmp:
            files = sorted(Path(artifact.download(root=tmp)).glob("*.pt"))
            for f in files:
                iteration = int((artifact.metadata or {}).get("iteration", f.stem))
                write_bytes_atomic(run.checkpoint(iteration), f.read_bytes())


def best_checkpoint(run: RunPaths) -> Path:
    """The checkpoint with the highest stored eval return (the first on ties; the newest when none has one).

    Used for a downloaded run, whose best.pt is not an artifact of its own.
    """
    best, best_return = None, -math.inf
    for _, path in run.list_checkpoints():
        try:
            value = read_checkpoint(path).get("eval_return")
        except UserError:
            continue  # an unreadable checkpoint cannot be the best; evaluation reports it on its own
        if value is not None and value > best_return:
            best, best_return = path, value
    return best or run.list_checkpoints()[-1][1]
