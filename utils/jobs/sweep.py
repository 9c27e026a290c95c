"""Run the configurations of a sweep as train.py processes, several at a time, resumable, one writer per sweep.

``sweep_configurations`` reads and checks a sweep file (every key a train.py flag, at most one spelling per flag),
``prepare_sweep`` checks a new sweep or loads an interrupted one (writing nothing), ``open_sweep`` holds the sweep
for one process (and records a new one), ``run_sweep`` trains what is left.
The run store stays the source of truth: a run's state (finished, resumable, missing) is read from its run.json
and checkpoints, and the sweep record (<save_dir>/_sweeps/<sweep_id>/sweep.json) only fixes which configurations
belong to the sweep and which run id each one gets. Next to it: .lock (held by the sweep.py running the sweep)
and logs/<run_id>.<attempt>.log (one per train.py process the sweep started, numbered from 1).
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from utils.errors import UserError
from utils.flags import NAME_RULE, available_cpus, flag_names, is_name
from utils.runs.io import LIST, TEXT, describe_value, field_problem, read_json_object, write_json_atomic
from utils.runs.store import (RunPaths, check_creatable_dir, check_writable_dir, exclusive_lock, is_abandoned_start,
                              is_locked, is_run_locked, new_run_id, now_iso, read_run_info)
from utils.runs.sweep_files import SweepSpec, config_to_args, expand_grid, load_sweep_file, sample_random
from utils.settings import SweepSettings, TrainSettings

ROOT = Path(__file__).resolve().parents[2]  # the repository: utils/jobs/sweep.py
SWEEPS_DIR = "_sweeps"
INTERRUPTED = (130, -signal.SIGINT, -signal.SIGTERM)  # train.py's exit code after Ctrl-C, or killed by the signal
DEFAULT_RANDOM_COUNT = 10  # configurations a random sweep draws without --count or the file's run_cap
LOCK_FILE = ".lock"  # in the sweep's directory, held by the one sweep.py process running the sweep


@dataclass
class SweepRecord:
    sweep_id: str
    file: str
    method: str
    configs: list[dict]
    run_ids: list[str]
    extra_args: list[str] = field(default_factory=list)  # applied to every run (e.g. --wandb_mode=offline)
    created: str = ""

    def directory(self, save_dir: Path) -> Path:
        return Path(save_dir) / SWEEPS_DIR / self.sweep_id


@dataclass
class RunOutcome:
    index: int
    run_id: str
    status: str          # finished, failed, interrupted, skipped (already finished), busy (trained by another process)
    log_path: Path | None  # this attempt's log; for a run not started now, its latest attempt's log (if any)
    returncode: int | None = None


def sweep_configurations(settings: SweepSettings) -> tuple[SweepSpec, list[dict]]:
    """The sweep file of `settings`, checked against train.py's flags, and its train.py configurations in order."""
    names = flag_names(TrainSettings)
    spec = load_sweep_file(Path(settings.file), set(names))
    by_field: dict[str, list[str]] = {}
    for key in spec.parameters:
        by_field.setdefault(names[key], []).append(key)
    for field_name, keys in by_field.items():
        if len(keys) > 1:  # e.g. nsteps and its alias n_steps: train.py would silently take the last one
            raise UserError(f"{spec.path}: parameters {' and '.join(keys)} both set train.py's --{field_name}; "
                            f"keep one of them")
    if spec.method == "random":
        return spec, sample_random(spec, settings.count or int(spec.raw.get("run_cap", DEFAULT_RANDOM_COUNT)),
                                   settings.seed)
    if settings.count is not None:
        raise UserError(f"--count={settings.count} draws configurations of a `method: random` sweep; {spec.path} is "
                        f"a grid, which runs every combination: drop --count, or set `method: random`")
    return spec, expand_grid(spec)


def prepare_sweep(settings: SweepSettings) -> SweepRecord:
    """The sweep to run, after every check and writing nothing: loaded for --resume, else built from the sweep file
    with the run id of each configuration (open_sweep records it)."""
    save_dir = Path(settings.save_dir)
    if settings.resume:
        record = load_sweep(save_dir, settings.resume)
        check_sweep_runs(record, save_dir)
        return record
    spec, configs = sweep_configurations(settings)
    sweep_id = settings.sweep_id or new_run_id()
    _check_sweep_id(sweep_id)
    check_creatable_dir(save_dir, "--save_dir")
    _check_new_sweep_id(save_dir, sweep_id)
    extra = [f"--wandb_mode={settings.wandb_mode}"] if settings.wandb_mode else []
    return SweepRecord(sweep_id, str(Path(settings.file).resolve()), spec.method, configs,
                       [f"{sweep_id}-{i:03d}" for i in range(len(configs))], extra, now_iso())


@contextmanager
def open_sweep(settings: SweepSettings) -> Iterator[SweepRecord]:
    """The sweep of `settings` (prepare_sweep), held by this process for the whole block: one sweep, one writer.

    A second sweep.py of the same sweep, new or --resume, gets a UserError before it writes anything. A new sweep
    is recorded (sweep.json, logs/) under the lock.
    """
    record = prepare_sweep(settings)
    save_dir = Path(settings.save_dir)
    directory = record.directory(save_dir)
    if not settings.resume:
        check_writable_dir(directory.parent, "--save_dir")
        try:
            directory.mkdir()  # atomic: of two new sweeps with one id, exactly one gets here
        except FileExistsError:
            _check_new_sweep_id(save_dir, record.sweep_id)  # taken (or running): a UserError
            # else a killed process left it empty: take it over (the lock below keeps it to one writer)
    with exclusive_lock(directory / LOCK_FILE, _sweep_busy(record.sweep_id)):
        if not settings.resume:
            (directory / "logs").mkdir(exist_ok=True)
            # unsorted: each configuration keeps the sweep file's parameter order, which the tables show
            write_json_atomic(directory / "sweep.json", asdict(record), sort_keys=False)
        yield record


def _sweep_busy(sweep_id: str) -> str:
    return (f"sweep {sweep_id} is being run by another process right now; wait for it to finish (or stop it), "
            f"then continue it with --resume={sweep_id}")


def _check_sweep_id(sweep_id: str) -> None:
    if not is_name(sweep_id):
        raise UserError(f"--sweep_id={sweep_id!r} is not a valid id; {NAME_RULE}")


def _check_new_sweep_id(save_dir: Path, sweep_id: str) -> None:
    """Refuse a sweep id that is taken in `save_dir`, saying whether its sweep is running right now."""
    directory = Path(save_dir) / SWEEPS_DIR / sweep_id
    if is_locked(directory / LOCK_FILE):
        raise UserError(_sweep_busy(sweep_id))
    if directory.exists() and not is_abandoned_start(directory, allowed=("logs",)):
        raise UserError(f"sweep {sweep_id} already exists in {save_dir}; continue it with --resume={sweep_id}")


SWEEP_RECORD_FIELDS = {"sweep_id": TEXT, "file": TEXT, "method": TEXT, "configs": LIST, "run_ids": LIST,
                       "extra_args": LIST, "created": TEXT}


def load_sweep(save_dir: Path, sweep_id: str) -> SweepRecord:
    """A sweep recorded by open_sweep; a damaged sweep.json is a UserError naming it. Reading changes nothing."""
    path = Path(save_dir) / SWEEPS_DIR / sweep_id / "sweep.json"
    if not path.is_file():
        known = sorted(p.name for p in (Path(save_dir) / SWEEPS_DIR).glob("*") if (p / "sweep.json").is_file()) \
            if (Path(save_dir) / SWEEPS_DIR).is_dir() else []
        raise UserError(f"no sweep '{sweep_id}' in {save_dir} (sweeps there: {', '.join(known) or 'none'}); "
                        f"pass an existing sweep id with --resume, or --save_dir where it lives")
    fix = "restore it from a backup, or start a new sweep from its YAML file"
    raw = read_json_object(path, fix)
    problem = field_problem(raw, SWEEP_RECORD_FIELDS) or _sweep_record_problem(raw, sweep_id)
    if problem is not None:
        raise UserError(f"{path} is damaged ({problem}); {fix}")
    return SweepRecord(**{key: raw[key] for key in SWEEP_RECORD_FIELDS})


def _sweep_record_problem(raw: dict, sweep_id: str) -> str | None:
    """What is wrong with a sweep.json's values (its keys have the right kinds), None when nothing is."""
    if raw["sweep_id"] != sweep_id:
        return f"it is the record of sweep {describe_value(raw['sweep_id'])}, in the folder of sweep {sweep_id!r}"
    if not all(isinstance(c, dict) and all(isinstance(k, str) for k in c) for c in raw["configs"]):
        return "'configs' is not a list of objects"
    # run ids become folder names that a restart may delete (an empty run): never a path
    if not all(isinstance(r, str) and is_name(r) for r in raw["run_ids"]) or len(set(raw["run_ids"])) != len(
            raw["run_ids"]):
        return "'run_ids' is not a list of distinct run ids"
    if len(raw["run_ids"]) != len(raw["configs"]):
        return f"{len(raw['configs'])} configurations but {len(raw['run_ids'])} run ids"
    if not all(isinstance(a, str) for a in raw["extra_args"]):
        return "'extra_args' is not a list of strings"
    return None


def check_sweep_runs(record: SweepRecord, save_dir: Path) -> None:
    """Read the run.json of every run the sweep has started, so a damaged one stops the sweep before any training
    (a UserError naming it) instead of being taken for a run to restart."""
    for run_id in record.run_ids:
        run_state(save_dir, run_id)


def attempt_logs(logs: Path, run_id: str) -> list[Path]:
    """The logs of every attempt at `run_id` so far, <run_id>.<n>.log, oldest (n = 1) first."""
    return [path for _, path in _numbered_attempt_logs(logs, run_id)]


def next_attempt_log(logs: Path, run_id: str) -> Path:
    """The log of a new attempt at `run_id`: numbered after the existing ones, so an attempt never appends to or
    overwrites an earlier one's log (the sweep lock and one thread per run make the numbering race-free)."""
    numbered = _numbered_attempt_logs(logs, run_id)
    return logs / f"{run_id}.{numbered[-1][0] + 1 if numbered else 1}.log"


def _numbered_attempt_logs(logs: Path, run_id: str) -> list[tuple[int, Path]]:
    if not logs.is_dir():
        return []
    pattern = re.compile(re.escape(run_id) + r"\.(\d+)\.log")
    return sorted((int(m.group(1)), p) for p in logs.iterdir() if (m := pattern.fullmatch(p.name)))


def run_state(save_dir: Path, run_id: str) -> str:
    """'finished', 'busy' (another process trains it), 'resumable' (started: train.py --resume continues it, or
    starts it again when it has no checkpoint yet), 'empty' (a folder without run.json) or 'missing'.

    A run.json that is not there yet (killed between creating the folder and writing it) means nothing started;
    train.py takes such an empty folder over. A damaged run.json is a UserError naming it.
    """
    run = RunPaths(Path(save_dir) / run_id)
    if not run.root.exists():
        return "missing"
    if is_run_locked(run):
        return "busy"
    if not run.run_json.exists():
        return "empty"
    return "finished" if read_run_info(run).get("status") == "finished" else "resumable"


def eval_process_for(workers: int) -> str | None:
    """train.py's --eval_process for trainings run `workers` at a time: in-process when the trainings alone fill the
    CPUs, where a background evaluation worker only competes with the other trainings (measured: two HalfCheetah
    trainings with --eval_every=1 on 2 CPUs took 1.2x as long with it); else None (train.py chooses)."""
    return "inprocess" if 2 * workers > available_cpus() else None


def train_command(record: SweepRecord, index: int, save_dir: Path, eval_process: str | None = None) -> list[str]:
    """The train.py command that starts, or continues, run `index` of the sweep. `eval_process` comes first, so
    a sweep file's or the command line's own --eval_process wins."""
    run_id = record.run_ids[index]
    program = [sys.executable, str(ROOT / "train.py")] + ([f"--eval_process={eval_process}"] if eval_process else [])
    if run_state(save_dir, run_id) == "resumable":
        return program + [f"--resume={run_id}", f"--save_dir={save_dir}", "--quiet"]
    return program + config_to_args(record.configs[index]) + record.extra_args + [
        f"--save_dir={save_dir}", f"--run_id={run_id}", f"--sweep_id={record.sweep_id}", "--quiet"]


def run_sweep(record: SweepRecord, settings: SweepSettings,
              on_update: Callable[[RunOutcome | None, dict], None] = lambda outcome, counts: None) -> list[RunOutcome]:
    """Run every unfinished configuration, --workers at a time; one failure never stops the others."""
    save_dir = Path(settings.save_dir).resolve()  # train.py runs with the repo as cwd; relative paths would point there
    logs = record.directory(save_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    counts = {"done": 0, "running": 0, "failed": 0, "interrupted": 0, "total": len(record.configs)}

    def run_one(index: int) -> RunOutcome:
        run_id = record.run_ids[index]
        state = run_state(save_dir, run_id)
        if state in ("finished", "busy"):  # busy: another process (a train.py --resume of it) is training it now,
            # and the run's lock keeps it there; this sweep leaves it alone and reports it
            previous = attempt_logs(logs, run_id)
            outcome = RunOutcome(index, run_id, "skipped" if state == "finished" else "busy",
                                 previous[-1] if previous else None)
            with lock:
                counts["done"] += 1
                on_update(outcome, dict(counts))
            return outcome
        cmd = train_command(record, index, save_dir, eval_process_for(settings.workers))
        with lock:
            counts["running"] += 1
            on_update(None, dict(counts))
        log_path = next_attempt_log(logs, run_id)
        with open(log_path, "x", encoding="utf-8") as log:  # "x": never an earlier attempt's file
            log.write(f"# {now_iso()}\n$ {' '.join(cmd)}\n")
            log.flush()
            returncode = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=ROOT)
        status = "finished" if returncode == 0 else "interrupted" if returncode in INTERRUPTED else "failed"
        outcome = RunOutcome(index, run_id, status, log_path, returncode)
        with lock:
            counts["running"] -= 1
            counts["done" if status == "finished" else "failed" if status == "failed" else "interrupted"] += 1
            on_update(outcome, dict(counts))
        return outcome

    with ThreadPoolExecutor(max_workers=settings.workers) as pool:
        return list(pool.map(run_one, range(len(record.configs))))
