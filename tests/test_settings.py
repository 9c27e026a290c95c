"""utils/settings.py + utils/flags.py: each command's flags are generated from one frozen dataclass."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from utils.errors import UserError
from utils.flags import build_parser, flag_names, parse_settings
from utils.settings import (BrowseSettings, EvaluateSettings, RandomizeSettings, ReproduceSettings, SweepSettings,
                            TrainSettings, VisualizeSettings)

ALL = [TrainSettings, EvaluateSettings, RandomizeSettings, VisualizeSettings, SweepSettings, BrowseSettings,
       ReproduceSettings]
# The smallest valid command line of each (commands whose settings need a run or a file).
MINIMAL = {TrainSettings: [], EvaluateSettings: ["--run_id=r"], RandomizeSettings: ["--sweep_id=s"],
           VisualizeSettings: [], SweepSettings: ["file.yaml"], BrowseSettings: [], ReproduceSettings: ["--sweep_id", "s"]}


@pytest.mark.parametrize("cls", ALL)
def test_parsed_defaults_equal_the_dataclass_defaults(cls):
    parsed = parse_settings(cls, MINIMAL[cls], "x", "")
    direct = cls(**{k: v for k, v in vars(parsed).items()
                    if k in ("run_id", "sweep_id", "file") and v is not None})
    assert parsed == direct


@pytest.mark.parametrize("cls", ALL)
def test_every_field_is_a_flag_and_settings_are_frozen(cls):
    parser = build_parser(cls, "x", "")
    dests = {a.dest for a in parser._actions} - {"help"}
    assert dests == {f.name for f in dataclasses.fields(cls)}
    settings = parse_settings(cls, MINIMAL[cls], "x", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(settings, dataclasses.fields(cls)[0].name, None)


def test_the_papers_flag_spellings_keep_working():
    train = parse_settings(TrainSettings, ["--n_steps=7", "--unobserve", "--debug=False"], "train.py", "")
    assert (train.nsteps, train.unobserve, train.debug) == (7, True, False)
    assert parse_settings(TrainSettings, ["--nsteps=1e3"], "train.py", "").nsteps == 1000
    ev = parse_settings(EvaluateSettings, ["--sweep_id=S", "--evaluate_random_lines", "--evaluate_random_trajectories",
                                           "--save_dir=store", "--log_locally"], "evaluate.py", "")
    assert ev.random_lines and ev.random_trajectories and ev.checkpoints_dir == Path("store")
    assert ev.result_id == "S" and ev.policy_types == ("deterministic",)
    vis = parse_settings(VisualizeSettings, ["--compare", "a", "b", "--xlim=-1,2"], "visualize_hd.py", "")
    assert vis.compare == ["a", "b"] and vis.xlim == (-1.0, 2.0)
    assert {"nsteps", "n_steps", "policy_dims", "env"} <= set(flag_names(TrainSettings))


@pytest.mark.parametrize("cls, argv, needles", [
    (TrainSettings, ["--total_timesteps=0"], ("--total_timesteps", "positive")),
    (TrainSettings, ["--eval_every=-1"], ("--eval_every",)),
    (TrainSettings, ["--obs_norm=sometimes"], ("--obs_norm", "running")),
    (TrainSettings, ["--nosuchflag=1"], ("nosuchflag", "--help")),
    (EvaluateSettings, [], ("exactly one of --run_id",)),
    (EvaluateSettings, ["--run_id=a", "--sweep_id=b"], ("exactly one of --run_id",)),
    (RandomizeSettings, [], ("exactly one of --run_id",)),
    (VisualizeSettings, ["--scale=0"], ("--scale", "positive finite number")),
    (VisualizeSettings, ["--scale=inf"], ("--scale", "finite number")),
    (VisualizeSettings, ["--run_id=a", "--run_dir=b"], ("--run_id", "--run_dir")),
    (VisualizeSettings, ["--xlim=3,1"], ("--xlim", "MIN < MAX")),
    (VisualizeSettings, ["--ylim=a,b"], ("--ylim", "MIN,MAX")),
    (SweepSettings, ["f.yaml", "--workers=0"], ("--workers", "positive whole number")),
    (SweepSettings, [], ("sweep FILE", "--resume")),
])
def test_bad_values_are_one_line_user_errors(cls, argv, needles):
    with pytest.raises(UserError) as err:
        parse_settings(cls, argv, "x.py", "")
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle.lower() in message.lower(), (needle, message)


@pytest.mark.parametrize("cls", ALL)
def test_help_shows_each_default_once(cls):
    text = build_parser(cls, "x", "").format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help", "")
        if isinstance(f.default, (int, float, str)) and not isinstance(f.default, bool) and "default" not in help_text:
            assert f"(default: {f.default})" in " ".join(text.split()), f.name
        assert " ".join(text.split()).count(f"{' '.join(help_text.split())} (default") <= 1
