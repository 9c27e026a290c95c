"""The evaluation's files: history.csv (one row per checkpoint), summary.json (one run) and sweep.csv (one row per run).

Layout: `<results_dir>/<run or sweep id>/<run_id>/{history.csv, summary.json}` and `<results_dir>/<sweep id>/sweep.csv`.
Floats are written with repr, so reading a file back gives exactly the numbers that were written. An earlier
evaluation's rows are reused only when everything they depend on (best.pt's weights, the seed, the random data)
is unchanged, as recorded under `fixed_trajectory` in summary.json.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from models.checkpoint import LoadedPolicy
from utils.analysis.checkpoint_metrics import UnreadableCheckpoint
from utils.analysis.metrics import architecture_summary
from utils.analysis.random_data import RandomData
from utils.analysis.sources import ResolvedRun
from utils.errors import UserError
from utils.runs.io import (INTEGER, LIST, NUMBER, OBJECT, TEXT, field_problem, numbered_jsonl, read_json_object,
                           write_text_if_changed)
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
RESULTS_FIX = "evaluate again with --overwrite to re-make it, or delete it"


def read_history(path: Path) -> list[dict]:
    """The rows of a history.csv (numbers parsed back to int/float, empty cells ""), [] when there is none.

    A file that is not what write_history writes (UTF-8 CSV, a header with iteration and timesteps, a number or
    nothing in every cell, one row per iteration) is a UserError naming it. Reading never changes it.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
        table = list(csv.reader(io.StringIO(text, newline="")))
    except UnicodeDecodeError as err:
        raise _damaged_history(path, f"not UTF-8 text at byte {err.start}") from None
    except csv.Error as err:
        raise _damaged_history(path, f"not CSV: {err}") from None
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror}); {RESULTS_FIX}") from None
    if not table:
        raise _damaged_history(path, "empty")
    if not text.endswith("\n"):  # write_history ends every line, the last one too
        raise _damaged_history(path, "its last line is cut short")
    header, rows = table[0], []
    if not {"iteration", "timesteps"} <= set(header) or len(set(header)) != len(header):
        raise _damaged_history(path, "its header is not the columns evaluate.py writes")
    for line, cells in enumerate(table[1:], start=2):
        row = dict(zip(header, (_number(cell) for cell in cells)))
        problem = _history_row_problem(row, len(cells), len(header))
        if problem is not None:
            raise _damaged_history(path, f"line {line}: {problem}")
        rows.append(row)
    if len({r["iteration"] for r in rows}) != len(rows):
        raise _damaged_history(path, "an iteration has two rows")
    return rows


def _number(text: str):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _damaged_history(path: Path, problem: str) -> UserError:
    return UserError(f"{path} is damaged ({problem}); {RESULTS_FIX}")


def _history_row_problem(row: dict, n_cells: int, n_columns: int) -> str | None:
    if n_cells != n_columns:
        return f"{n_cells} cells under {n_columns} columns"
    text = next((k for k, v in row.items() if isinstance(v, str) and v != ""), None)
    if text is not None:
        return f"{text} is {row[text][:30]!r}, not a number"
    for key in ("iteration", "timesteps"):
        if not (isinstance(row[key], int) and row[key] >= 0):
            return f"{key} is {row[key]!r}, not a whole number >= 0"
    return None


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
    """{iteration: mean deterministic eval return} from the run's metrics.jsonl (the eval_return column).

    Every line must carry its iteration and a number or null as eval_return; anything else is a UserError naming
    the file and the line (a line torn by a kill at the end is skipped, as read_jsonl does).
    """
    fix = "restore metrics.jsonl from a backup, or delete that line"
    returns = {}
    for number, record in numbered_jsonl(run.metrics, fix):
        problem = field_problem(record, {"iteration": INTEGER}) or field_problem(
            record, {"eval_return": NUMBER.or_null}, required=False)
        if problem is not None:
            raise UserError(f"{run.metrics} line {number} is damaged ({problem}); {fix}")
        if record.get("eval_return") is not None:
            returns[record["iteration"]] = float(record["eval_return"])
    return returns


# ----------------------------------------------------------------------------------------------------------------
# What earlier evaluations left
# ----------------------------------------------------------------------------------------------------------------
def fixed_trajectory_record(best: LoadedPolicy, seed: int, random_data: RandomData | None) -> dict:
    """Everything earlier results depend on (summary.json's `fixed_trajectory`): when any of it changed, nothing
    old is reused."""
    return {"checkpoint": "best.pt", "iteration": best.iteration, "timesteps": best.timesteps, "seed": seed,
            "digest": best.weights_digest, "random_data": random_data.digest() if random_data is not None else None}


# Every key run_summary writes, with its kind; every other key is a best_<metric> value (a number or null).
SUMMARY_FIELDS = {"run_id": TEXT, "env_id": TEXT.or_null, "source": TEXT, "run_dir": TEXT, "sweep_id": TEXT.or_null,
                  "policy_dims": LIST, "architecture": TEXT, "depth": INTEGER, "width": INTEGER, "n": INTEGER,
                  "n_params": INTEGER, "seed": INTEGER.or_null, "best_iteration": INTEGER,
                  "best_timesteps": INTEGER, "best_eval_return": NUMBER.or_null, "num_checkpoints": INTEGER,
                  "num_evaluated": INTEGER, "bad_checkpoints": LIST, "fixed_trajectory": OBJECT,
                  "evaluation_seed": INTEGER, "columns": LIST}


def read_summary(path: Path) -> dict:
    """A summary.json's contents, {} when there is none; a file that is not what run_summary writes is a
    UserError naming it. Reading never changes it."""
    path = Path(path)
    if not path.exists():
        return {}
    summary = read_json_object(path, RESULTS_FIX)
    problem = field_problem(summary, SUMMARY_FIELDS) or field_problem(
        summary, {k: NUMBER.or_null for k in summary if k.startswith("best_") and k not in SUMMARY_FIELDS})
    if problem is None and not all(isinstance(c, str) for c in summary["columns"]):
        problem = "'columns' is not a list of column names"
    if problem is not None:
        raise UserError(f"{path} is damaged ({problem}); {RESULTS_FIX}")
    return summary


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
    summary, history = read_summary(Path(out_dir) / SUMMARY), Path(out_dir) / HISTORY
    rows = {}
    if summary.get("fixed_trajectory") == fixed_trajectory and history.is_file():
        listed = read_history(history)
        # both files are written together; a history.csv cut short at a line end still parses
        if len(listed) != summary["num_evaluated"]:
            raise _damaged_history(history, f"{len(listed)} rows, but summary.json counts "
                                            f"{summary['num_evaluated']} evaluated checkpoints")
        rows = {r["iteration"]: r for r in listed}
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
def read_sweep_results(sweep_dir: Path, *, skip: Iterable[str] = ()) -> tuple[list[dict], dict[str, list[dict]]]:
    """Every run's summary.json under sweep_dir (sorted by directory, except the run folders named in `skip`) and
    {run_id: its history rows}; a damaged file is a UserError naming it."""
    summaries, histories = [], {}
    skipped = set(skip)
    for summary_path in sorted(Path(sweep_dir).glob(f"*/{SUMMARY}")):
        if summary_path.parent.name in skipped:
            continue
        summary = read_summary(summary_path)
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
