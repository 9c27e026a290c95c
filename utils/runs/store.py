"""The local run store, the source of truth: <save_dir>/<run_id>/{run.json, metrics.jsonl, checkpoints/, best.pt}."""
from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import string
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Iterator, Sequence

from utils.errors import UserError
from utils.runs.io import (INTEGER, NUMBER, OBJECT, TEXT, describe_value, field_problem, read_json_object, read_jsonl,
                          write_json_atomic, write_text_atomic)

_ID_ALPHABET = string.ascii_lowercase + string.digits
_CKPT_RE = re.compile(r"^(\d{6,})\.pt$")
TRACKED_PACKAGES = ("torch", "numpy", "gymnasium", "mujoco", "wandb")


def new_run_id() -> str:
    """An 8-character lowercase id, the same form as wandb's run ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class RunPaths:
    """Where the files of one run live."""

    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def timing(self) -> Path:
        return self.root / "timing.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def error_log(self) -> Path:
        """The traceback of the last attempt that ended in a bug (not a user error, not a divergence)."""
        return self.root / "error.log"

    @property
    def trajectories_dir(self) -> Path:
        return self.root / "trajectories"

    def checkpoint(self, iteration: int) -> Path:
        return self.checkpoints_dir / f"{iteration:06d}.pt"

    def list_checkpoints(self) -> list[tuple[int, Path]]:
        """(iteration, path) of every checkpoint file, oldest first (temporary files are never listed)."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoints_dir.iterdir() if (m := _CKPT_RE.match(p.name))]
        return sorted(found)


@contextmanager
def exclusive_lock(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created empty if missing) for the block; while another process
    holds it, raise UserError(busy) instead. The kernel releases it when the holder exits, even when killed."""
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(busy) from None
        yield
    finally:
        fh.close()  # closing releases the lock


def is_locked(path: Path) -> bool:
    """True while some process holds the exclusive_lock on `path`."""
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def _run_busy(run: RunPaths) -> str:
    return (f"run {run.run_id} is being trained by another process right now; wait for it to finish (or stop it) "
            f"before resuming")


def run_lock(run: RunPaths) -> AbstractContextManager[None]:
    """Hold <run>/.lock for as long as one process trains this run; a second one gets a UserError."""
    return exclusive_lock(run.lock, _run_busy(run))


def check_run_not_locked(run: RunPaths) -> None:
    """The UserError run_lock would raise, said first: a run another process trains is busy, whatever its files
    look like half-way through that process's writes."""
    if is_run_locked(run):
        raise UserError(_run_busy(run))


def is_run_locked(run: RunPaths) -> bool:
    """True while some process holds the run's lock (it is training or resuming the run)."""
    return is_locked(run.lock)


def check_writable_dir(path: Path, flag: str) -> Path:
    """Create `path` if needed and make sure we can write into it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {flag} {path} ({err.strerror}); choose a writable directory with {flag}=DIR") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path} is not writable; choose a writable directory with {flag}=DIR")
    return path


def check_creatable_dir(path: Path, flag: str) -> Path:
    """Make sure `path` is a writable directory or can be made one, without creating anything."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create {flag} {path} ({existing} is not a directory); "
                        f"choose a writable directory with {flag}=DIR")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({existing} is not writable)"
        raise UserError(f"{flag} {path} is not writable{where}; choose a writable directory with {flag}=DIR")
    return path


def _run_exists(save_dir: Path, run_id: str) -> UserError:
    return UserError(f"run {run_id} already exists in {save_dir}; continue it with --resume={run_id} "
                     f"or pick another id")


def is_abandoned_start(root: Path, allowed: tuple[str, ...] = ("checkpoints",)) -> bool:
    """True for a directory that a process made and was killed in before writing anything into it: it holds
    nothing but empty `allowed` sub-directories (and an unlocked .lock). Such an id is free again."""
    root = Path(root)
    try:
        entries = list(root.iterdir())
    except OSError:
        return False
    for entry in entries:
        if entry.name == ".lock" and entry.is_file() and not is_locked(entry):
            continue
        if entry.name in allowed and entry.is_dir() and not any(entry.iterdir()):
            continue
        return False
    return True


def check_new_run_id(save_dir: Path, run_id: str) -> None:
    """Refuse a run id that is already taken in `save_dir` (the same error create_run raises); a directory a
    killed process left empty does not take it."""
    root = Path(save_dir) / run_id
    if root.exists() and not is_abandoned_start(root):
        raise _run_exists(save_dir, run_id)


def create_run(save_dir: Path, run_id: str) -> RunPaths:
    """Make a new, empty run directory; refuses to reuse an existing run id (but takes over a directory a killed
    process left empty, so a kill between making the folder and writing run.json leaves no dead id)."""
    root = Path(save_dir) / run_id
    try:
        root.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        if not is_abandoned_start(root):
            raise _run_exists(save_dir, run_id) from None
    (root / "checkpoints").mkdir(exist_ok=True)
    return RunPaths(root)


def find_run(save_dir: Path, run_id_or_dir: str) -> RunPaths:
    """An existing run, given its id (looked up in save_dir) or its directory."""
    candidates = [Path(run_id_or_dir), Path(save_dir) / run_id_or_dir]
    for root in candidates:
        if (root / "run.json").is_file():
            return RunPaths(root)
    known = ", ".join(list_run_ids(save_dir)[:10]) or "none"
    raise UserError(f"no run '{run_id_or_dir}' in {save_dir} (runs there: {known}); "
                    f"pass an existing run id or run directory")


def list_run_ids(save_dir: Path) -> list[str]:
    """Ids of the runs in a run store, sorted."""
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        return []
    return sorted(p.name for p in save_dir.iterdir() if (p / "run.json").is_file())


# What every reader of run.json relies on (train.py writes all of it; a run downloaded from wandb too), and the
# kinds of the optional keys when they are there.
RUN_INFO_FIELDS = {"run_id": TEXT, "env_id": TEXT, "obs_dim": INTEGER, "config": OBJECT}
RUN_INFO_OPTIONAL_FIELDS = {"status": TEXT.or_null, "sweep_id": TEXT.or_null, "wandb_sweep_id": TEXT.or_null,
                            "flags": OBJECT, "wandb": OBJECT.or_null, "best_eval_return": NUMBER.or_null}
RUN_JSON_FIX = "restore run.json from a backup, or remove the run's directory"


def read_run_info(run: RunPaths) -> dict:
    """The parsed run.json of a run, with every key its readers rely on; anything else is a UserError naming the
    file. Reading never changes it."""
    info = read_json_object(run.run_json, RUN_JSON_FIX)
    problem = run_info_problem(info)
    if problem is not None:
        raise UserError(f"{run.run_json} is damaged ({problem}); {RUN_JSON_FIX}")
    return info


def run_info_problem(info: dict) -> str | None:
    """What a run record lacks that its readers rely on (RUN_INFO_FIELDS, positive obs_dim, the policy's widths in
    its config) or holds of the wrong kind; None when nothing."""
    problem = (field_problem(info, RUN_INFO_FIELDS) or field_problem(info, RUN_INFO_OPTIONAL_FIELDS, required=False)
               or _config_problem(info["config"]))
    if problem is None and info["obs_dim"] < 1:
        problem = f"'obs_dim' is {info['obs_dim']}, not a positive number"
    return problem


def _config_problem(config: dict) -> str | None:
    """What is wrong with run.json's config for its readers (the policy's widths), None when nothing is."""
    dims = config.get("policy_dims")
    if not isinstance(dims, list) or not dims or not all(INTEGER.holds(w) and w >= 1 for w in dims):
        return f"config's 'policy_dims' is {describe_value(dims)}, not a list of positive whole numbers"
    return None


def write_run_info(run: RunPaths, info: dict) -> None:
    info = {**info, "updated": now_iso()}
    write_json_atomic(run.run_json, info)


def update_run_info(run: RunPaths, **changes) -> dict:
    info = {**read_run_info(run), **changes}
    write_run_info(run, info)
    return info


def check_run_writable(run: RunPaths) -> None:
    """UserError naming the first thing a resumed run must read and write but cannot: its folder, checkpoints/,
    the logs it rewrites and appends to, or its lock file (checked before anything is written)."""
    for path in (run.root, run.checkpoints_dir, run.metrics, run.timing, run.lock):
        if not path.exists():
            continue  # created by writing into its folder, which is checked first
        is_dir = path.is_dir()
        if not os.access(path, os.R_OK | os.W_OK | (os.X_OK if is_dir else 0)):
            raise UserError(f"{path} is not writable, so run {run.run_id} cannot be resumed; give yourself access "
                            f"(chmod u+rw{'x' if is_dir else ''} {path}) and resume again")


IterationLogs = Sequence[tuple[Path, str]]  # (metrics.jsonl or timing.jsonl, the whole text it is to hold)


def iteration_logs_up_to(run: RunPaths, last_iteration: int) -> IterationLogs:
    """The text metrics.jsonl and timing.jsonl keep when the run continues after `last_iteration` (-1: after
    nothing, so both become empty); reads both, so a damaged log is found while nothing is written yet.

    Write them with write_iteration_logs once the run is sure to continue from there; a log that does not exist
    is left out (it is created when the run appends to it).
    """
    logs = []
    for path in (run.metrics, run.timing):
        if path.exists():
            kept = [r for r in read_jsonl(path)
                    if isinstance(r, dict) and isinstance(r.get("iteration"), int) and r["iteration"] <= last_iteration]
            logs.append((path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)))
    return tuple(logs)


def write_iteration_logs(logs: IterationLogs) -> None:
    """Replace each log with the text iteration_logs_up_to chose for it (atomically, one file at a time)."""
    for path, text in logs:
        write_text_atomic(path, text)
