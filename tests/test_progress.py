"""Progress off a terminal is one line per step (SLURM logs, pipes); on a terminal it is a tqdm bar."""
from __future__ import annotations

import io

from utils.progress import LineProgress, NoProgress, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_step_with_counts():
    log = io.StringIO()
    with progress_bar(3, "checkpoints of r", "ckpt", stream=log) as bar:
        assert isinstance(bar, LineProgress)
        for _ in range(3):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"checkpoints of r: {k}/3 ckpt" for k in (1, 2, 3)]
    assert "left" in lines[0] and "left" not in lines[-1] and "\r" not in log.getvalue()


def test_quiet_shows_nothing_and_a_terminal_gets_a_bar():
    log = io.StringIO()
    with progress_bar(2, "x", "step", enabled=False, stream=log) as bar:
        assert isinstance(bar, NoProgress)
        bar.update(2)
    assert log.getvalue() == ""
    terminal = FakeTerminal()
    bar = progress_bar(2, "x", "step", stream=terminal)
    assert not isinstance(bar, LineProgress)  # tqdm redraws in place on a terminal
    bar.update(2)
    bar.close()
    assert "x:" in terminal.getvalue() and "\r" in terminal.getvalue()  # drawn in place, not line by line


def test_a_resumed_job_starts_part_way_and_figures_follow_the_count():
    log = io.StringIO()
    bar = progress_bar(10, "train", "step", stream=log, initial=4)
    bar.set_postfix({"eval": "1.5"})
    bar.update(2)
    (line,) = log.getvalue().splitlines()
    assert line.startswith("train: 6/10 step (60%)") and line.endswith("eval=1.5") and bar.n == 6


def test_tqdm_style_keyword_figures_are_accepted():
    log = io.StringIO()
    bar = progress_bar(2, "sweep s", "run", stream=log)
    bar.set_postfix(done=1, failed=0)  # as sweep.py calls it, tqdm's keyword form
    bar.update(1)
    assert log.getvalue().rstrip().endswith("done=1, failed=0")
