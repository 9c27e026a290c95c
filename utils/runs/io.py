"""Atomic, pickle-free file writes: every file goes to a temporary name in its directory, is fsynced, then renamed."""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; results are meant to be shared like any other file.
_FILE_MODE = 0o666 & ~_current_umask()


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # fsync the directory so the rename itself survives a crash.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write raw bytes to `path` atomically."""
    _atomic_write(path, lambda fh: fh.write(data))


def write_text_atomic(path: Path, text: str) -> None:
    """Write text (UTF-8) to `path` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_text_if_changed(path: Path, text: str) -> bool:
    """Write text (UTF-8) atomically unless the file already holds exactly it; True when written."""
    return write_bytes_if_changed(path, text.encode("utf-8"))


def write_bytes_if_changed(path: Path, data: bytes) -> bool:
    """Write bytes atomically unless the file already holds exactly them; True when written. A re-run that
    computes the same results leaves files (and their times) alone, so tools watching them see no change."""
    path = Path(path)
    try:
        if path.is_file() and path.read_bytes() == data:
            return False
    except OSError:
        pass  # unreadable: replace it
    write_bytes_atomic(path, data)
    return True


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text_atomic(path, json_text(obj))


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line and fsync; a torn last line is skipped by `read_jsonl`."""
    path = Path(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """Read the complete JSON lines of `path` (a line torn by a crash is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def torch_save_atomic(path: Path, obj: Any) -> None:
    """torch.save `obj` (plain tensors and primitives only) to `path` atomically."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getvalue())


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed to `path` atomically; arrays must be numeric (loadable with allow_pickle=False)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    write_bytes_atomic(path, buf.getvalue())


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an .npz file without pickle; a torn or damaged archive raises ValueError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError) as err:  # a torn .npz still starts with the zip magic bytes
        raise ValueError(f"{path} is a damaged .npz file ({err})") from None


def json_text(obj: Any) -> str:
    """`obj` as the indented, key-sorted JSON every JSON file of ours holds."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
