"""The evaluation's files: history.csv (one row per checkpoint), summary.json (one run) and sweep.csv (one row per run).

Layout: `<results_dir>/<run or sweep id>/<run_id>/{history.csv, summary.json}` and `<results_dir>/<sweep id>/sweep.csv`.
Floats are written with repr, so reading a file back gives exactly the numbers that were written. An earlier
evaluation's rows are reused only when everything they depend on (best.pt's weights, the seed, the random data)
is unchanged, as recorded under `fixed_trajectory` in summary.json.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from models.checkpoint import LoadedPolicy
from utils.analysis.checkpoint_metrics import UnreadableCheckpoint
from utils.analysis.metrics import architecture_summary
from utils.analysis.random_data import RandomData
from utils.analysis.sources import ResolvedRun
from utils.runs.io import read_jsonl, write_text_if_changed
from utils.runs.store import RunPaths

HISTORY = "history.csv"
SUMMARY = "summary.json"
SWEEP = "sweep.csv"
STEP_COLUMNS = ("iteration", "timesteps", "eval_return")  # where the checkpoint is in training; not measured here
SWEEP_COLUMNS = ("run_id", "architecture", "depth", "width", "n", "n_params", "seed", "env_id", "best_iteration",
                 "best_timesteps", "best_eval_return", "final_iteration", "final_timesteps", "final_eval_return",
                 "num_checkpoints", "num_evaluated")


# ----------------------------------------------------------------------------------------------------------------
# history.csv
# ----------------------------------------------------------------------------------------------------------------
def read_history(path: Path) -> list[dict]:
    """The rows of a history.csv (numbers parsed back to int/float), [] when there is none."""
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _number(text: str):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def write_history(path: Path, rows: list[dict], columns: list[str]) -> bool:
    """history.csv atomically: one row per epoch, `columns` first, then any extra columns of earlier runs.
    Leaves an identical file alone; True when written."""
    extra = sorted({k for r in rows for k in r} - set(columns))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns + extra, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return write_text_if_changed(path, buf.getvalue())


def is_complete(row: dict, columns: Iterable[str]) -> bool:
    """True when the row has a finite number in every column (eval_return may be empty: not every checkpoint
    was evaluated during training)."""
    for c in columns:
        v = row.get(c)
        if c == "eval_return":
            continue
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
    return True


def metric_columns(columns: Iterable[str]) -> list[str]:
    """The measured columns (all but iteration, timesteps and eval_return): those summary.json gives for best.pt."""
    return [c for c in columns if c not in STEP_COLUMNS]


def training_eval_returns(run: RunPaths) -> dict[int, float]:
    """{iteration: mean deterministic eval return} from the run's metrics.jsonl (the eval_return column)."""
    return {int(r["iteration"]): float(r["eval_return"]) for r in read_jsonl(run.metrics)
            if r.get("eval_return") is not None and "iteration" in r}


# ----------------------------------------------------------------------------------------------------------------
# What earlier evaluations left
# ----------------------------------------------------------------------------------------------------------------
def fixed_trajectory_record(best: LoadedPolicy, seed: int, random_data: RandomData | None) -> dict:
    """Everything earlier results depend on (summary.json's `fixed_trajectory`): when any of it changed, nothing
    old is reused."""
    return {"checkpoint": "best.pt", "iteration": best.iteration, "timesteps": best.timesteps, "seed": seed,
            "digest": best.weights_digest, "random_data": random_data.digest() if random_data is not None else None}


def read_summary(path: Path) -> dict:
    """A summary.json's contents, {} when it is missing or unreadable (it is then simply written afresh)."""
    if not Path(path).is_file():
        return {}
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


@dataclass(frozen=True)
class EarlierResults:
    """An earlier evaluation of the run: its summary, and its rows by iteration when they are still valid."""

    summary: dict
    rows: dict[int, dict]

    def has_row(self, iteration: int, columns: Iterable[str]) -> bool:
        """True when the checkpoint at `iteration` needs no new evaluation."""
        return iteration in self.rows and is_complete(self.rows[iteration], columns)

    def has_best(self, columns: Iterable[str]) -> bool:
        """True when best.pt needs no new evaluation: the summary has every best_<metric> of valid rows."""
        return bool(self.rows) and all(f"best_{c}" in self.summary for c in metric_columns(columns))


def earlier_results(out_dir: Path, fixed_trajectory: dict, *, overwrite: bool) -> EarlierResults:
    """An earlier evaluation's results in out_dir: none when overwriting, no rows when `fixed_trajectory` changed."""
    if overwrite:
        return EarlierResults({}, {})
    summary = read_summary(Path(out_dir) / SUMMARY)
    rows = {}
    if summary.get("fixed_trajectory") == fixed_trajectory:
        rows = {int(r["iteration"]): r for r in read_history(Path(out_dir) / HISTORY) if "iteration" in r}
    return EarlierResults(summary, rows)


# ----------------------------------------------------------------------------------------------------------------
# summary.json
# ----------------------------------------------------------------------------------------------------------------
def best_metrics(best_row: dict | None, earlier_summary: dict, columns: Iterable[str]) -> dict:
    """summary.json's best_<metric> values: from best.pt's new row, else carried over from the earlier summary."""
    if best_row is not None:
        return {f"best_{c}": best_row[c] for c in metric_columns(columns) if c in best_row}
    return {k: v for k, v in earlier_summary.items() if k.startswith("best_")}


def final_values(rows: Sequence[dict]) -> dict:
    """summary.json's final_* values: the training eval return of the last evaluated checkpoint that has one, and
    that checkpoint's iteration and timesteps (all None when none has). best_eval_return is the highest return
    during training; this is where training ended up."""
    for row in reversed(rows):
        value = row.get("eval_return")
        if isinstance(value, (int, float)) and math.isfinite(value):
            return {"final_iteration": row.get("iteration"), "final_timesteps": row.get("timesteps"),
                    "final_eval_return": value}
    return {"final_iteration": None, "final_timesteps": None, "final_eval_return": None}


def run_summary(resolved: ResolvedRun, best: LoadedPolicy, *, num_checkpoints: int, num_evaluated: int,
                bad_checkpoints: Sequence[UnreadableCheckpoint], fixed_trajectory: dict, evaluation_seed: int,
                columns: list[str], best_values: dict, final: dict | None = None) -> dict:
    """summary.json of one run: where it came from, its architecture, best.pt's step and metrics, where training
    ended (`final`, from final_values), what was done."""
    info, config = resolved.info, resolved.info.get("config", {})
    policy_dims = list(config.get("policy_dims", ()))
    summary = {"run_id": resolved.run_id, "env_id": info.get("env_id"), "source": resolved.source,
               "run_dir": str(resolved.run.root), "sweep_id": info.get("sweep_id"), "policy_dims": policy_dims,
               "architecture": "c" + ",".join(str(w) for w in policy_dims), **architecture_summary(best),
               "seed": config.get("seed"), "best_iteration": best.iteration, "best_timesteps": best.timesteps,
               "best_eval_return": best.eval_return if best.eval_return is not None else info.get("best_eval_return"),
               **(final or final_values(())), "num_checkpoints": num_checkpoints, "num_evaluated": num_evaluated,
               "bad_checkpoints": [{"file": b.file, "error": b.error} for b in bad_checkpoints],
               "fixed_trajectory": fixed_trajectory, "evaluation_seed": evaluation_seed, "columns": columns}
    summary.update({k: v for k, v in best_values.items() if k not in summary})
    return summary


# ----------------------------------------------------------------------------------------------------------------
# sweep.csv
# ----------------------------------------------------------------------------------------------------------------
def read_sweep_results(sweep_dir: Path) -> tuple[list[dict], dict[str, list[dict]]]:
    """Every run's summary.json under sweep_dir (sorted by directory) and {run_id: its history rows}."""
    summaries, histories = [], {}
    for summary_path in sorted(Path(sweep_dir).glob(f"*/{SUMMARY}")):
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        summaries.append(summary)
        histories[summary["run_id"]] = read_history(summary_path.parent / HISTORY)
    return summaries, histories


def write_sweep_csv(sweep_dir: Path, summaries: Sequence[dict]) -> tuple[Path, bool]:
    """sweep.csv atomically: one row per run summary, the SWEEP_COLUMNS then every other best_* value (sorted).
    Returns its path and whether it changed (an identical file is left alone)."""
    columns = list(SWEEP_COLUMNS)
    columns += sorted({k for s in summaries for k in s if k.startswith("best_") and k not in columns})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", restval="", lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        writer.writerow({k: ("" if s.get(k) is None else s.get(k)) for k in columns})
    path = Path(sweep_dir) / SWEEP
    return path, write_text_if_changed(path, buf.getvalue())
