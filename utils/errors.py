"""The exceptions a command can end with, and the CLI wrapper that turns each into one line and an exit code.

    UserError   a mistake the user can fix (a flag, a file, the disk)     -> "error: ..."           exit 2
    RunFailed   the work itself failed, not the input (training diverged) -> "error: ..."           exit 1
    any other   a bug                                                    -> "internal error: ..." exit 1,
                                                                            traceback saved to a crash log
"""
from __future__ import annotations

import errno
import faulthandler
import os
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NoReturn

CRASH_DIR_ENV = "DEEP_RL_REGIONS_CRASH_DIR"  # where crash logs go; default <system temp dir>/deep_rl_regions-crashes


class UserError(Exception):
    """An error the user can fix; the message names the problem and the fix."""


class RunFailed(Exception):
    """The work failed for a reason that is neither a bad input nor a bug (e.g. training diverged to NaN)."""


def crash_dir() -> Path:
    return Path(os.environ.get(CRASH_DIR_ENV) or Path(tempfile.gettempdir()) / "deep_rl_regions-crashes")


def save_crash_log(prog: str, text: str) -> Path:
    """Write a traceback to a new file in crash_dir() and return its path."""
    folder = crash_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{prog}-{stamp}-{os.getpid()}.log"
    path.write_text(f"{' '.join(sys.argv)}\n\n{text}", encoding="utf-8")
    return path


def _enable_faulthandler() -> None:
    """If a native library ever crashes the interpreter, print where on stderr instead of dying silently.

    faulthandler writes to a file descriptor: when sys.stderr has none (replaced by a capturing object in tests or
    by an embedding host), use the process's original stderr; with none at all there is nowhere to report to."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            faulthandler.enable(file=stream)
            return
        except (AttributeError, ValueError, OSError, RuntimeError):  # no stream, or no usable file descriptor
            continue


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a CLI entry point so that it always ends with at most one line on stderr and a meaningful exit code."""
    _enable_faulthandler()
    try:
        code = main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader of our output went away (`... | head`): not a bug, nothing to say
        _silence_stdout()
        sys.exit(141)  # 128 + SIGPIPE, as a shell reports it
    except OSError as err:
        if err.errno not in _DISK_ERRNOS:
            _report_bug(err)
        # the machine, not the input or the code: a full disk, a quota, a read-only or forbidden folder
        where = f" {err.filename}" if err.filename else ""
        print(f"error: cannot write{where}: {err.strerror}; free space or fix the folder's permissions, then run "
              f"the command again (train.py --resume=RUN_ID continues a run from its last checkpoint)",
              file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # a bug: keep the traceback for the report, show the user one line
        _report_bug(err)
    sys.exit(code or 0)


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _report_bug(err: BaseException) -> NoReturn:
    """One line naming the crash log that holds the traceback (printed instead if no log can be written); exit 1."""
    prog = Path(sys.argv[0]).stem or "deep_rl_regions"
    summary = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
    try:
        where = f"the traceback is in {save_crash_log(prog, traceback.format_exc())}"
    except OSError:
        traceback.print_exc()
        where = "the traceback is above"
    print(f"internal error ({summary}); this is a bug, {where}; please report it", file=sys.stderr)
    sys.exit(1)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
