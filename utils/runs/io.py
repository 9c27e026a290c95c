"""Atomic, pickle-free file writes (every file goes to a temporary name in its directory, is fsynced, then
renamed) and the strict readers of the JSON files we write: damage is a UserError naming the file, never a
traceback, and reading never changes a file."""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from utils.errors import UserError


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


def write_json_atomic(path: Path, obj: Any, *, sort_keys: bool = True) -> None:
    """Write `obj` as indented JSON to `path` atomically (keys sorted, unless their order means something)."""
    write_text_atomic(path, json_text(obj, sort_keys=sort_keys))


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line and fsync; a torn last line is skipped by `read_jsonl`."""
    path = Path(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path, fix: str = "restore the file from a backup, or delete that line") -> list[dict]:
    """The records (JSON objects) of a JSON-lines file we wrote, [] when it does not exist.

    The last line may have been torn by a kill in the middle of an append: it is skipped when it is not a whole
    object. Any other line that is not UTF-8, not JSON or not an object is damage: a UserError naming the file, the
    line and `fix`. Reading never changes the file.
    """
    return [record for _, record in numbered_jsonl(path, fix)]


def numbered_jsonl(path: Path, fix: str = "restore the file from a backup, or delete that line"
                   ) -> list[tuple[int, dict]]:
    """(line number from 1, record) of every whole record of a JSON-lines file, as `read_jsonl` reads them."""
    path = Path(path)
    if not path.exists():
        return []
    data = _read_bytes(path, fix)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last whole line
    records = []
    for number, line in enumerate(lines, start=1):
        record, problem = _json_object(line)
        if problem is None:
            records.append((number, record))
        elif number < len(lines):  # only the last line can be torn by a kill
            raise UserError(f"{path} line {number} is damaged ({problem}); {fix}")
    return records


def read_json_object(path: Path, fix: str) -> dict:
    """The JSON object in a file we wrote; anything else (missing, not UTF-8, not JSON, not an object) is a
    UserError naming the file and `fix`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} is missing; {fix}")
    record, problem = _json_object(_read_bytes(path, fix))
    if problem is not None:
        raise UserError(f"{path} is damaged ({problem}); {fix}")
    return record


def _read_bytes(path: Path, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror or type(err).__name__}); {fix}") from None


def _json_object(data: bytes) -> tuple[dict | None, str | None]:
    """(the object, None), or (None, what is wrong with `data` as the UTF-8 JSON text of one object)."""
    if not data.strip():
        return None, "empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not UTF-8 text at byte {err.start}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"not JSON: {err.msg} at line {err.lineno} column {err.colno}"
    except RecursionError:
        return None, "not JSON: nested too deeply"
    if not isinstance(value, dict):
        return None, f"{_json_kind(value)}, not an object"
    return value, None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)  # true, false, null
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


# ----------------------------------------------------------------------------------------------------------------
# Checking what a JSON file we wrote holds
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """What a parsed JSON value must be: one of `types` (a bool is never a number), or None when `nullable`."""

    name: str
    types: tuple[type, ...]
    nullable: bool = False

    @property
    def or_null(self) -> "Kind":
        return Kind(f"{self.name} or null", self.types, nullable=True)

    def holds(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        return isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)


NUMBER = Kind("a number", (int, float))
INTEGER = Kind("a whole number", (int,))
TEXT = Kind("a string", (str,))
OBJECT = Kind("an object", (dict,))
LIST = Kind("a list", (list,))


def field_problem(record: dict, fields: dict[str, Kind], *, required: bool = True) -> str | None:
    """What is wrong with `record` given {key: kind}: a missing key (when `required`) or a value of another kind;
    None when every field is as expected."""
    for key, kind in fields.items():
        if key not in record:
            if required:
                return f"no {key!r}"
            continue
        if not kind.holds(record[key]):
            return f"{key!r} is {describe_value(record[key])}, not {kind.name}"
    return None


def describe_value(value: Any) -> str:
    """A parsed JSON value as a message shows it: short scalars as themselves, anything else by its kind."""
    if isinstance(value, (dict, list)):
        return _json_kind(value)
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{_json_kind(value)} ({text[:30]}...)"


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
    """Load every array of an .npz file without pickle; a missing, torn or damaged archive raises ValueError
    "<path> is missing" or "<path> is unreadable (...)"."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is missing")
    # np.load takes anything that is not a zip archive for a pickle (refused) or a bare .npy array; a torn .npz
    # has lost its zip directory, which is written last
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is unreadable (truncated, or not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as loaded:
            return {k: loaded[k] for k in loaded.files}
    except Exception as err:  # damaged members fail in many ways (bad CRC, zlib, headers, objects): all unreadable
        raise ValueError(f"{path} is unreadable (a damaged .npz archive: {_first_line(err)})") from None


def _first_line(err: Exception) -> str:
    """'<exception type>: <first line of its message>', e.g. 'BadZipFile: Bad CRC-32 for file states.npy'."""
    name = type(err).__name__
    if name == "error":  # zlib.error, struct.error: the bare name says nothing
        name = f"{type(err).__module__}.error"
    text = str(err).strip().splitlines()[0][:100] if str(err).strip() else ""
    return f"{name}: {text}" if text else name


def json_text(obj: Any, *, sort_keys: bool = True) -> str:
    """`obj` as the indented JSON every JSON file of ours holds, keys sorted unless sort_keys=False."""
    return json.dumps(obj, indent=2, sort_keys=sort_keys, default=_json_default) + "\n"


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
