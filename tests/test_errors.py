"""utils/errors.py: every way a command can end is one line on stderr and a meaningful exit code.

In-process tests call run_cli with pytest capturing stderr (a stream without a file descriptor, as an embedding
host might have); the process tests run a small CLI as a user would."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, TINY_CAR1D
from tests.helpers import run_cli as run_process
from utils.errors import CRASH_DIR_ENV, RunFailed, UserError, run_cli


def _raising(exc: BaseException):
    def main(argv):
        raise exc
    return main


@pytest.mark.parametrize("exc, code, line", [
    (UserError("--x=1 is too big; pass --x=0"), 2, "error: --x=1 is too big; pass --x=0"),
    (RunFailed("training diverged at iteration 3 (non-finite loss during the update)"), 1,
     "error: training diverged at iteration 3 (non-finite loss during the update)"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_each_ending_is_one_line_and_its_exit_code_in_process(capsys, exc, code, line):
    with pytest.raises(SystemExit) as info:
        run_cli(_raising(exc), [])
    out, err = capsys.readouterr()
    assert info.value.code == code and out == "" and err == line + "\n"


def test_a_normal_return_is_its_exit_code(capsys):
    for returned, code in ((None, 0), (0, 0), (1, 1)):
        with pytest.raises(SystemExit) as info:
            run_cli(lambda argv: returned, [])
        assert info.value.code == code
    assert capsys.readouterr() == ("", "")


# A command line as small as can be, run as a process: what a user sees is stderr and the exit code.
CLI = '''
import faulthandler
import sys

sys.path.insert(0, {root!r})
from utils.errors import RunFailed, UserError, run_cli


def main(argv):
    kind = argv[0]
    if kind == "bug":
        return 1 / 0
    if kind == "multiline_bug":
        raise ValueError("first line\\nsecond line")
    if kind == "run_failed":
        raise RunFailed("training diverged at iteration 3 (non-finite loss during the update)")
    if kind == "user_error":
        raise UserError("--x=1 is too big; pass --x=0")
    if kind == "segfault":
        faulthandler._sigsegv()
    if kind == "disk_full":
        raise OSError(28, "No space left on device", "/store/run/checkpoints/000003.pt")
    if kind == "lots_of_output":
        for i in range(200000):
            print(f"line {{i}}")
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
'''


def _run(tmp_path: Path, kind: str) -> subprocess.CompletedProcess:
    script = tmp_path / "cli.py"
    script.write_text(CLI.format(root=str(ROOT)))
    env = {**os.environ, CRASH_DIR_ENV: str(tmp_path / "crashes")}
    return subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True, timeout=60, env=env)


def _stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("kind, summary", [("bug", "ZeroDivisionError: division by zero"),
                                           ("multiline_bug", "ValueError: first line")])
def test_a_bug_is_one_line_naming_a_crash_log_with_the_traceback(tmp_path, kind, summary):
    result = _run(tmp_path, kind)
    assert result.returncode == 1 and result.stdout == ""
    [line] = _stderr_lines(result)
    match = re.fullmatch(rf"internal error \({re.escape(summary)}\); this is a bug, the traceback is in (\S+); "
                         r"please report it", line)
    assert match, line
    log = Path(match.group(1))
    assert log.parent == tmp_path / "crashes" and log.name.startswith("cli-")
    text = log.read_text()
    assert text.startswith(f"{tmp_path / 'cli.py'} {kind}\n")  # the command line, then the traceback
    assert "Traceback (most recent call last)" in text and summary in text and 'in main' in text


@pytest.mark.parametrize("kind, code, line", [
    ("run_failed", 1, "error: training diverged at iteration 3 (non-finite loss during the update)"),
    ("user_error", 2, "error: --x=1 is too big; pass --x=0"),
    ("ok", 0, None),
])
def test_run_failed_user_error_and_success_as_a_process(tmp_path, kind, code, line):
    result = _run(tmp_path, kind)
    assert result.returncode == code and _stderr_lines(result) == ([line] if line else [])
    assert not (tmp_path / "crashes").exists()  # only a bug writes a crash log


def test_a_full_disk_is_one_line_naming_the_file_not_a_bug(tmp_path):
    result = _run(tmp_path, "disk_full")
    assert result.returncode == 1
    [line] = _stderr_lines(result)
    assert line.startswith("error: cannot write /store/run/checkpoints/000003.pt: No space left on device; ")
    assert "--resume" in line and not (tmp_path / "crashes").exists()


def test_a_reader_that_goes_away_is_not_a_bug(tmp_path):
    """`python evaluate.py ... | head`: the closed pipe ends the command quietly (exit 141, as a shell says)."""
    script = tmp_path / "cli.py"
    script.write_text(CLI.format(root=str(ROOT)))
    env = {**os.environ, CRASH_DIR_ENV: str(tmp_path / "crashes")}
    command = f"{sys.executable} {script} lots_of_output | head -n 1; echo ${{PIPESTATUS[0]}} >&2"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, env=env)
    assert result.stdout == "line 0\n" and _stderr_lines(result) == ["141"]
    assert not (tmp_path / "crashes").exists()


def test_a_native_crash_is_not_silent(tmp_path):
    """faulthandler is on: a segfault inside a library still says where it happened."""
    result = _run(tmp_path, "segfault")
    assert result.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in result.stderr and 'in main' in result.stderr


def test_a_bug_during_training_fails_the_run_and_keeps_the_traceback_with_it(tmp_path, monkeypatch, capsys):
    """run.json says failed and why; <run>/error.log holds the traceback; the CLI shows one line and exits 1."""
    import train
    from models.training import Trainer

    train_iteration = Trainer.train_iteration

    def second_update_hits_a_bug(self) -> dict:
        if self.iteration == 1:
            return {}["a key that is not there"]
        return train_iteration(self)

    monkeypatch.setattr(Trainer, "train_iteration", second_update_hits_a_bug)
    monkeypatch.setenv(CRASH_DIR_ENV, str(tmp_path / "crashes"))
    with pytest.raises(SystemExit) as info:
        run_cli(train.main, [*TINY_CAR1D, f"--save_dir={tmp_path}", "--run_id=buggy"])
    out, err = capsys.readouterr()
    assert info.value.code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("internal error (KeyError: 'a key that is not there'); this is a bug")
    run = tmp_path / "buggy"
    run_info = json.loads((run / "run.json").read_text())
    assert run_info["status"] == "failed" and run_info["error"] == "KeyError: 'a key that is not there'"
    error_log = (run / "error.log").read_text()
    assert "Traceback (most recent call last)" in error_log and "in second_update_hits_a_bug" in error_log
    assert "KeyError: 'a key that is not there'" in error_log
    assert [p.name for p in (tmp_path / "crashes").iterdir()] and not list(run.rglob("*.tmp"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["000000.pt", "000001.pt"]


def test_a_resumed_run_does_not_keep_the_error_of_the_attempt_before(tmp_path, monkeypatch):
    import train
    from models.training import Trainer

    train_iteration = Trainer.train_iteration
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_iteration", lambda self: 1 / 0 if self.iteration == 1 else train_iteration(self))
        with pytest.raises(ZeroDivisionError):
            train.main([*TINY_CAR1D, f"--save_dir={tmp_path}", "--run_id=again"])
    assert json.loads((tmp_path / "again" / "run.json").read_text())["error"].startswith("ZeroDivisionError")
    with contextlib.redirect_stdout(io.StringIO()):
        assert train.main(["--resume=again", f"--save_dir={tmp_path}", "--quiet"]) == 0
    run_info = json.loads((tmp_path / "again" / "run.json").read_text())
    assert run_info["status"] == "finished" and run_info["error"] is None
    assert (tmp_path / "again" / "error.log").is_file()  # the earlier bug's traceback stays as evidence


@pytest.mark.slow
def test_the_largest_torch_threads_value_trains_without_a_signal(tmp_path):
    """--torch_threads is bounded to 1024 (larger values used to segfault); the largest allowed value trains, or at
    worst is refused with one line, and never ends by a signal."""
    result = run_process("train.py", *TINY_CAR1D, "--total_timesteps=200", "--torch_threads=1024",
                         f"--save_dir={tmp_path}", "--run_id=threads")
    assert result.returncode in (0, 2), (result.returncode, result.stderr[-2000:])  # negative: killed by a signal
    assert "Fatal Python error" not in result.stderr and len(_stderr_lines(result)) <= 1
