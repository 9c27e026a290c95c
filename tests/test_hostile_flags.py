"""Hostile flag values: every typed flag of every command refuses empty, non-finite, huge, out-of-range, non-ASCII
and path-like values with one line naming the flag, before anything is created (issue 10, item 1 in part)."""
from __future__ import annotations

import dataclasses
import math

import pytest

import evaluate
import randomized_metric_helper
import reproduce
import runs
import sweep
import train
import visualize_hd
from tests.helpers import assert_user_error, tree_digest
from utils.errors import UserError
from utils.flags import name, non_empty, non_empty_path, parse_settings
from utils.settings import (BrowseSettings, EvaluateSettings, RandomizeSettings, ReproduceSettings, SweepSettings,
                            TrainSettings, VisualizeSettings)

COMMANDS = [(TrainSettings, train.main, []), (EvaluateSettings, evaluate.main, ["--run_id=r"]),
            (RandomizeSettings, randomized_metric_helper.main, ["--run_id=r"]),
            (VisualizeSettings, visualize_hd.main, []), (SweepSettings, sweep.main, ["f.yaml"]),
            (BrowseSettings, runs.main, []), (ReproduceSettings, reproduce.main, ["--sweep_id", "s"])]
NOT_A_NUMBER = ["", " ", "nan", "inf", "-inf", "1e400", "9" * 400, "\u00b2", "\u0663", "1,5", "../x", "0x10"]
NOT_AN_ID = ["", " ", "../x", "/tmp/x", "a/b", ".hidden", "x" * 101, "r\u00e9", "a b", "-dash", "~"]
EMPTY = ["", "   "]


def hostile_cases():
    """(settings class, flag, value) for every typed flag and every value its type must refuse."""
    for cls, _, _ in COMMANDS:
        for f in dataclasses.fields(cls):
            kind = f.metadata.get("type")
            flag = (f.metadata.get("names") or (f"--{f.name}",))[0]
            if f.metadata.get("positional"):
                continue
            if hasattr(kind, "bounds"):
                low, high = kind.bounds
                values = NOT_A_NUMBER + [repr(v) for v in (low - 1, high * 10 + 1) if math.isfinite(v)]
                if kind.whole:
                    values.append("1.5")
            elif kind is name:
                values = NOT_AN_ID
            elif kind in (non_empty,) or f.type in ("Path", "Path | None"):
                values = EMPTY
            else:
                continue
            for value in values:
                yield pytest.param(cls, flag, value, id=f"{cls.__name__}{flag}={value[:12]!r}")


@pytest.mark.parametrize("cls, flag, value", list(hostile_cases()))
def test_every_typed_flag_refuses_hostile_values_with_one_line(cls, flag, value):
    base = next(extra for c, _, extra in COMMANDS if c is cls)
    with pytest.raises(UserError) as err:
        parse_settings(cls, [*base, f"{flag}={value}"], "x.py", "")
    message = str(err.value)
    assert "\n" not in message and flag in message, message


def test_the_table_covers_every_command_and_kind():
    cases = [p.values for p in hostile_cases()]
    assert {c for c, _, _ in cases} == {c for c, _, _ in COMMANDS}
    flags = {f for _, f, _ in cases}
    assert {"--seed", "--torch_threads", "--run_id", "--sweep_id", "--resume", "--save_dir", "--results_dir", "--dpi",
            "--scale", "--log_std_init", "--num_random_lines", "--workers"} <= flags


@pytest.mark.parametrize("main, argv", [
    (train.main, ["--seed=-1"]), (train.main, ["--seed=1180591620717411303424"]), (train.main, ["--nsteps=1e300"]),
    (train.main, ["--policy_dims=c10000000,10000000"]), (train.main, ["--policy_dims=c\u00b2,8"]),
    (train.main, ["--torch_threads=100000000"]), (train.main, ["--run_id=" + "x" * 300]),
    (train.main, ["--resume="]), (train.main, ["--log_std_init=800"]), (train.main, ["--save_dir="]),
    (evaluate.main, ["--run_id=../RUN"]), (evaluate.main, ["--run_id=r", "--results_dir="]),
    (evaluate.main, ["--run_id=r", "--seed=-1"]), (randomized_metric_helper.main, ["--run_id=../RUN"]),
    (randomized_metric_helper.main, ["--run_id=r", "--num_random_lines=1e15"]),
    (visualize_hd.main, ["--dpi=100000"]), (visualize_hd.main, ["--scale=inf"]),
    (sweep.main, ["--resume=../x"]),
])
def test_the_reported_cases_fail_before_anything_is_written(tmp_path, monkeypatch, main, argv):
    monkeypatch.chdir(tmp_path)
    assert_user_error(main, [*argv, f"--save_dir={tmp_path / 'store'}"] if main is train.main and not any(
        a.startswith("--save_dir") for a in argv) else argv)
    assert tree_digest(tmp_path) == {}
