"""utils/errors.py: every way a command can end is one line on stderr and a meaningful exit code.

In-process tests call run_cli with pytest capturing stderr (a stream without a file descriptor, as an embedding
host might have); the process tests run a small CLI as a user would."""
from __future__ import annotations

import pytest

from utils.errors import RunFailed, UserError, run_cli


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
