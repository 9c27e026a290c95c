"""Progress for long work that reads well where it is seen: a tqdm bar on a terminal, one line per step in a log.

tqdm redraws one line with carriage returns, which a SLURM log or a pipe shows as a single unreadable line (or,
with tqdm's own terminal check, as nothing at all). Off a terminal each step therefore gets its own line.
"""
from __future__ import annotations

import sys
import time
from typing import IO


class LineProgress:
    """tqdm's update/close/write for logs: `desc: 3/10 ckpt (30%), 12 s elapsed, ~28 s left` per step."""

    def __init__(self, total: int, desc: str, unit: str, stream: IO[str], initial: int = 0):
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.n = self.initial = initial  # a resumed job starts part-way; its rate counts only this process's work
        self.started = time.monotonic()
        self.postfix = ""

    def set_postfix(self, values: dict | None = None, refresh: bool = False, **more) -> None:
        """Extra `key=value` figures shown on the next line (tqdm's set_postfix)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in {**(values or {}), **more}.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        elapsed = time.monotonic() - self.started
        line = f"{self.desc}: {self.n}/{self.total} {self.unit}"
        if self.total:
            line += f" ({100 * self.n / self.total:.0f}%), {elapsed:.0f} s elapsed"
            done_here = self.n - self.initial
            if 0 < done_here and self.n < self.total:
                line += f", ~{elapsed / done_here * (self.total - self.n):.0f} s left"
        if self.postfix:
            line += f", {self.postfix}"
        self.write(line)

    def write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NoProgress(LineProgress):
    """Shows nothing (--quiet, or a single step not worth a bar)."""

    def write(self, line: str) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str, *, enabled: bool = True, stream: IO[str] | None = None,
                 initial: int = 0, leave: bool = False):
    """A context manager with update(n)/set_postfix(dict)/write(line)/close() and a count `n`: tqdm on a terminal,
    LineProgress elsewhere, NoProgress when not enabled."""
    stream = stream or sys.stderr
    if not enabled:
        return NoProgress(total, desc, unit, stream, initial)
    if stream.isatty():
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=stream, dynamic_ncols=True, initial=initial)
    return LineProgress(total, desc, unit, stream, initial)
