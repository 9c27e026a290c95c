"""What is in a run store, for runs.py: every run and sweep at a glance, or one run in full. Reads only.

A run's status is what a user needs to act on, not the last word its run.json recorded: a run.json that says
"running" while no process holds the run's lock belongs to a process that was killed, so it is `stopped`
(continue it with --resume). A run whose files cannot be read is listed as `damaged` with the reason, so one bad
run never hides the others.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.analysis.history import HISTORY, SUMMARY
from utils.errors import UserError
from utils.runs.io import read_jsonl
from utils.jobs.sweep import SWEEPS_DIR, load_sweep
from utils.runs.store import RunPaths, find_run, is_run_locked, list_run_ids, read_run_info


@dataclass(frozen=True)
class RunRow:
    """One run of the store, as listed by runs.py."""

    run_id: str
    status: str  # finished | running | stopped (killed; --resume continues it) | failed | damaged
    env_id: str | None
    policy_dims: tuple[int, ...]
    value_dims: tuple[int, ...]
    seed: int | None
    timesteps: int  # environment steps trained so far (the newest metrics.jsonl line)
    total_timesteps: int | None
    best_eval_return: float | None
    sweep_id: str | None
    checkpoints: int
    results_dir: str | None  # the evaluate.py output folder of the run, None when it was never evaluated
    evaluated: int  # checkpoints with a row in that folder's history.csv (0 when never evaluated)
    problem: str | None = None  # why the run is damaged


@dataclass(frozen=True)
class SweepRow:
    """One sweep recorded by sweep.py, with how far its runs got."""

    sweep_id: str
    file: str
    method: str
    runs: int
    finished: int
    created: str


@dataclass(frozen=True)
class StoreListing:
    save_dir: str
    runs: tuple[RunRow, ...]
    sweeps: tuple[SweepRow, ...]


def list_store(save_dir: Path, results_dir: Path) -> StoreListing:
    """Every run (sorted by id) and every sweep of the run store `save_dir`."""
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        raise UserError(f"no run store at {save_dir}; pass the folder train.py wrote to with --save_dir=DIR")
    runs = tuple(run_row(RunPaths(save_dir / run_id), Path(results_dir)) for run_id in list_run_ids(save_dir))
    by_id = {r.run_id: r for r in runs}
    sweeps = []
    for record_path in sorted((save_dir / SWEEPS_DIR).glob("*/sweep.json")):
        try:
            record = load_sweep(save_dir, record_path.parent.name)
        except UserError:
            sweeps.append(SweepRow(record_path.parent.name, "(sweep.json damaged)", "", 0, 0, ""))
            continue
        finished = sum(by_id[r].status == "finished" for r in record.run_ids if r in by_id)
        sweeps.append(SweepRow(record.sweep_id, record.file, record.method, len(record.run_ids), finished,
                               record.created))
    return StoreListing(str(save_dir), runs, tuple(sweeps))


def run_row(run: RunPaths, results_dir: Path) -> RunRow:
    """The listing row of one run; never raises for a damaged run (its row says what is wrong)."""
    checkpoints = len(run.list_checkpoints())
    try:
        info = read_run_info(run)
        config = info.get("config") or {}
        metrics = read_jsonl(run.metrics)
    except (UserError, AttributeError, TypeError) as err:
        problem = str(err) if isinstance(err, UserError) else f"{run.run_json} is not a run record"
        return RunRow(run.run_id, "damaged", None, (), (), None, 0, None, None, None, checkpoints, None, 0, problem)
    timesteps = max((int(m.get("timesteps", 0)) for m in metrics if isinstance(m, dict)), default=0)
    out_dir = _results_folder(results_dir, run.run_id, info.get("sweep_id"))
    return RunRow(
        run_id=run.run_id, status=_status(run, info), env_id=info.get("env_id"),
        policy_dims=tuple(config.get("policy_dims", ())), value_dims=tuple(config.get("value_dims", ())),
        seed=config.get("seed", info.get("seed")), timesteps=timesteps, total_timesteps=config.get("total_timesteps"),
        best_eval_return=info.get("best_eval_return", _best_return(metrics)), sweep_id=info.get("sweep_id"),
        checkpoints=checkpoints, results_dir=str(out_dir) if out_dir else None,
        evaluated=_evaluated_count(out_dir) if out_dir else 0)


def describe_run(save_dir: Path, results_dir: Path, run_id: str) -> dict:
    """One run in full: its listing row, the flags it was trained with, its files and what to run next."""
    run = find_run(Path(save_dir), run_id)
    row = run_row(run, Path(results_dir))
    described = asdict(row)
    if row.status != "damaged":
        info = read_run_info(run)
        described["flags"] = info.get("flags", {})
        described["created"] = info.get("created")
        described["updated"] = info.get("updated")
        described["error"] = info.get("error")
        described["wandb"] = info.get("wandb")
    listed = run.list_checkpoints()
    described["files"] = {"run_dir": str(run.root), "best": str(run.best) if run.best.is_file() else None,
                          "newest_checkpoint": str(listed[-1][1]) if listed else None, "metrics": str(run.metrics),
                          "error_log": str(run.error_log) if run.error_log.is_file() else None}
    store = Path(save_dir)
    diverged = row.status == "failed" and "training diverged" in str(described.get("error") or "")
    if diverged:  # a resume would repeat the same numbers: only a new run with other flags helps
        described["next"] = "a new run with a lower --learning_rate (resuming would diverge again; see error)"
    elif row.status == "stopped" or row.status == "failed":
        described["next"] = f"python train.py --resume={run.run_id} --save_dir={store}"
    elif row.status == "finished":
        described["next"] = f"python evaluate.py --run_id={run.run_id} --checkpoints_dir={store}"
    else:
        described["next"] = None
    return described


def _status(run: RunPaths, info: dict) -> str:
    recorded = str(info.get("status", "unknown"))
    if recorded == "running":
        return "running" if is_run_locked(run) else "stopped"
    if recorded == "killed":
        return "stopped"
    return recorded


def _best_return(metrics: list) -> float | None:
    returns = [m["eval_return"] for m in metrics if isinstance(m, dict) and isinstance(m.get("eval_return"), (int, float))]
    return max(returns) if returns else None


def _results_folder(results_dir: Path, run_id: str, sweep_id: str | None) -> Path | None:
    """Where evaluate.py put the run's results: under its sweep's folder, or its own."""
    for group in (sweep_id, run_id):
        if group and (Path(results_dir) / group / run_id / SUMMARY).is_file():
            return Path(results_dir) / group / run_id
    return None


def _evaluated_count(out_dir: Path) -> int:
    try:
        with open(out_dir / HISTORY, encoding="utf-8") as fh:
            return max(sum(1 for line in fh if line.strip()) - 1, 0)  # rows after the header
    except (OSError, UnicodeDecodeError):
        return 0


def format_listing(listing: StoreListing) -> str:
    """The listing as aligned text tables (runs, then sweeps)."""
    if not listing.runs and not listing.sweeps:
        return f"no runs in {listing.save_dir} yet; train one with python train.py --save_dir={listing.save_dir}"
    header = ("run", "status", "env", "policy", "seed", "timesteps", "best return", "ckpts", "evaluated", "sweep")
    rows = [header]
    for r in listing.runs:
        total = f"/{r.total_timesteps}" if r.total_timesteps and r.status != "finished" else ""
        rows.append((r.run_id, r.status, r.env_id or "-", _dims(r.policy_dims), _text(r.seed),
                     f"{r.timesteps}{total}", _number(r.best_eval_return), str(r.checkpoints),
                     f"{r.evaluated}/{r.checkpoints}" if r.results_dir else "no", r.sweep_id or "-"))
    lines = _table(rows)
    lines += [f"  {r.run_id}: {r.problem}" for r in listing.runs if r.problem]
    if listing.sweeps:
        lines += ["", *_table([("sweep", "runs", "finished", "method", "file", "created"),
                               *((s.sweep_id, str(s.runs), str(s.finished), s.method, s.file, s.created)
                                 for s in listing.sweeps)])]
    return "\n".join(lines)


def format_run(described: dict) -> str:
    """One run's description as `key: value` lines, flags last."""
    lines = [f"{key}: {_text(value)}" for key, value in described.items() if key not in ("flags", "files")]
    lines += [f"{key}: {_text(value)}" for key, value in described["files"].items()]
    flags = described.get("flags") or {}
    if flags:
        lines.append("flags: " + " ".join(f"--{k}={v}" for k, v in sorted(flags.items()) if v not in (None, False)))
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _dims(dims: tuple[int, ...]) -> str:
    return "c" + ",".join(str(w) for w in dims) if dims else "-"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)
