"""Every reader of a file we wrote treats damage as input (issue 10, item 3).

One small real workspace is built once per module: a sweep S of two tiny trained Car1D runs (S-000, S-001) with
its sweep.json and sweep file, the random data of randomized_metric_helper.py and the results of evaluate.py
(history.csv, summary.json, sweep.csv). Each case of the table restores the workspace, damages one file in one
way and runs the command that reads it, in this process through the same `run_cli` wrapper the command lines use.
The outcome is one of:

- "error": exit code 2, exactly one `error: ...` line naming the file (and the fix), no traceback, and not one
  byte changed anywhere in the workspace (a failed command writes nothing, and a read never rewrites a file);
- "ok": the damage is one a reader must accept (a torn last JSON line, an empty training log): success, nothing
  changed;
- "remade": the file is a cache: success, one `notice:` line naming it, the cache re-made with the same episode,
  every other file unchanged.

Files a command legitimately writes (results with --overwrite, a new random-data folder) are listed per case.
A few cases run as real processes (slow) to show the same from the outside.
"""
from __future__ import annotations

import faulthandler
import io
import re
import json
import logging
import random
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import evaluate as evaluate_cli
import randomized_metric_helper
import sweep as sweep_cli
import train as train_cli
import visualize_hd
from tests.helpers import (TINY_CAR1D, TINY_SWEEP_PARAMS, assert_one_line_error, run_cli, train_run,
                           tree_digest)
from utils.errors import CRASH_DIR_ENV, run_cli as run_command_line
from utils.jobs.sweep import open_sweep
from utils.runs.io import load_npz, read_jsonl
from utils.settings import SweepSettings

RUN, OTHER, SWEEP = "S-000", "S-001", "S"  # the runs of sweep S, in the order sweep.json gives them ids
BEST_CACHE = f"store/{RUN}/trajectories/best_deterministic_seed0.npz"
CHECKPOINT_CACHE = f"store/{RUN}/trajectories/000001_deterministic_seed0.npz"
LINES = f"randomized/{SWEEP}/Car1DEnv-v1_random_lines.npz"
TRAJECTORIES = f"randomized/{SWEEP}/Car1DEnv-v1_random_trajectories.npz"
SWEEP_FILE_TEXT = ("program: train.py\nmethod: grid\nparameters:" + TINY_SWEEP_PARAMS
                   + '  policy_dims: {values: ["c8,8", "c4"]}\n')
RANDOM_SWEEP = SWEEP_FILE_TEXT.replace("method: grid", "method: random").replace(
    '  policy_dims: {values: ["c8,8", "c4"]}\n', "")


# ----------------------------------------------------------------------------------------------------------------
# The workspace
# ----------------------------------------------------------------------------------------------------------------
def _evaluate_args(root: Path, *extra: str) -> list[str]:
    """evaluate.py on sweep S with random lines and trajectories: every reader of the evaluation runs."""
    return [f"--sweep_id={SWEEP}", f"--checkpoints_dir={root / 'store'}", f"--results_dir={root / 'results'}",
            "--quiet", "--no_plots", "--evaluate_random_lines", "--evaluate_random_trajectories",
            f"--randomized_data_dir={root / 'randomized'}", *extra]


def _randomize_args(root: Path, folder: str = "randomized_again") -> list[str]:
    """randomized_metric_helper.py on sweep S, writing to <root>/<folder> (not where evaluate.py reads)."""
    return [f"--sweep_id={SWEEP}", f"--checkpoints_dir={root / 'store'}", f"--save_dir={root / folder}",
            "--num_random_lines=5", "--num_random_trajectories=2"]


@dataclass(frozen=True)
class Workspace:
    root: Path      # where every case runs (always the same path: results record absolute paths)
    pristine: Path  # the untouched copy it is restored from

    def restore(self) -> Path:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.copytree(self.pristine, self.root)
        return self.root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    base = tmp_path_factory.mktemp("hostile")
    root, store = base / "work", base / "work" / "store"
    train_run(store, RUN, *TINY_CAR1D, f"--sweep_id={SWEEP}")
    train_run(store, OTHER, *TINY_CAR1D, "--policy_dims=c4", f"--sweep_id={SWEEP}")
    sweep_file = root / "sweep.yaml"
    sweep_file.write_text(SWEEP_FILE_TEXT)
    with open_sweep(SweepSettings(file=str(sweep_file), save_dir=str(store), sweep_id=SWEEP)) as record:
        assert record.run_ids == [RUN, OTHER]  # recorded only: the runs were trained above
    with redirect_stdout(io.StringIO()):
        assert randomized_metric_helper.main(_randomize_args(root, "randomized")) == 0
        assert evaluate_cli.main(_evaluate_args(root)) == 0
    for name in ("summary.json", "history.csv"):
        assert (root / "results" / SWEEP / OTHER / name).is_file()
    shutil.copytree(root, base / "pristine")
    return Workspace(root, base / "pristine")


# ----------------------------------------------------------------------------------------------------------------
# Damage: each takes the file's path and damages it in place
# ----------------------------------------------------------------------------------------------------------------
Damage = Callable[[Path], None]
GARBAGE = random.Random(0).randbytes(700) + b"\n" + random.Random(1).randbytes(700)  # several "lines" of noise


def replaced(data: bytes) -> Damage:
    return lambda path: path.write_bytes(data)


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def bit_flipped(path: Path) -> None:
    """One byte inverted in the middle: an archive whose directory is intact but whose contents are not."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def not_utf8(path: Path) -> None:
    path.write_bytes(b"\xff\xfe" + path.read_bytes())


def json_edit(edit: Callable[[dict], None]) -> Damage:
    def damage(path: Path) -> None:
        record = json.loads(path.read_text())
        edit(record)
        path.write_text(json.dumps(record))
    return damage


def without(*keys: str) -> Callable[[dict], None]:
    def edit(record: dict) -> None:
        for key in keys:
            del record[key]
    return edit


def setting(key: str, value) -> Callable[[dict], None]:
    return lambda record: record.__setitem__(key, value)


def first_line(new_line: Callable[[bytes], bytes]) -> Damage:
    """Replace the first line of a JSON-lines file (never the last one: the files have at least two lines)."""
    def damage(path: Path) -> None:
        lines = path.read_bytes().split(b"\n")
        assert len(lines) >= 3, "the first line must not be the last"
        lines[0] = new_line(lines[0])
        path.write_bytes(b"\n".join(lines))
    return damage


def line_edit(edit: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def new_line(line: bytes) -> bytes:
        record = json.loads(line)
        edit(record)
        return json.dumps(record).encode()
    return new_line


def appended(data: bytes) -> Damage:
    return lambda path: path.write_bytes(path.read_bytes() + data)


def text_edit(old: str, new: str) -> Damage:
    def damage(path: Path) -> None:
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
    return damage


def npz_edit(edit: Callable[[dict], None]) -> Damage:
    """Re-write an .npz archive with edited arrays: a valid archive with the wrong content."""
    def damage(path: Path) -> None:
        arrays = load_npz(path)
        edit(arrays)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    return damage


def npy_file(path: Path) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.zeros((3, 2)))


def checkpoint_edit(edit: Callable[[dict], object]) -> Damage:
    """Re-save a checkpoint with an edited payload (`edit` changes it in place, or returns a list or dict to save
    instead)."""
    def damage(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        replacement = edit(state)
        torch.save(replacement if isinstance(replacement, (list, dict)) else state, path)
    return damage


def in_policy(key: str, value) -> Callable[[dict], None]:
    return lambda state: state["policy"].__setitem__(key, value)


def no_layers(state: dict) -> None:
    state["policy"] = {"log_std": state["policy"]["log_std"]}


def nan_at(key: str) -> Callable[[dict], None]:
    def edit(arrays: dict) -> None:
        arrays[key] = arrays[key].copy()
        arrays[key][0, 0] = np.nan
    return edit


# ----------------------------------------------------------------------------------------------------------------
# Commands: each returns (main, argv, environment variables) for the workspace at `root`
# ----------------------------------------------------------------------------------------------------------------
def _read_timing_log(argv: list[str]) -> int:
    """The library reader of timing.jsonl (train.py's resume reads it), run the way a command runs."""
    read_jsonl(Path(argv[0]))
    return 0


COMMANDS: dict[str, Callable[[Path], tuple[Callable, list[str], dict[str, str]]]] = {
    "evaluate": lambda root: (evaluate_cli.main, _evaluate_args(root), {}),
    "evaluate --overwrite": lambda root: (evaluate_cli.main, _evaluate_args(root, "--overwrite"), {}),
    "evaluate --run_id": lambda root: (evaluate_cli.main, [f"--run_id={RUN}", f"--checkpoints_dir={root / 'store'}",
                                                          f"--results_dir={root / 'results'}", "--quiet",
                                                          "--no_plots"], {}),
    # SLURM array task 0 of 2 evaluates S-000 only and then aggregates S-001's results too
    "evaluate, shard of S-000": lambda root: (evaluate_cli.main, _evaluate_args(root), {
        "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0"}),
    "randomized_metric_helper": lambda root: (randomized_metric_helper.main, _randomize_args(root), {}),
    "visualize --all_checkpoints": lambda root: (visualize_hd.main, [
        f"--run_id={RUN}", f"--checkpoints_dir={root / 'store'}", "--all_checkpoints",
        f"--save_path={root / 'plots'}", "--quiet"], {}),
    "sweep --resume": lambda root: (sweep_cli.main, [f"--resume={SWEEP}", f"--save_dir={root / 'store'}", "--quiet"],
                                    {}),
    "sweep --dry_run": lambda root: (sweep_cli.main, [str(root / "sweep.yaml"), "--dry_run"], {}),
    "train --resume": lambda root: (train_cli.main, [f"--resume={RUN}", f"--save_dir={root / 'store'}", "--quiet"],
                                    {}),
    "train --pretrained_path": lambda root: (train_cli.main, [
        *TINY_CAR1D, f"--pretrained_path={root / 'store' / RUN / 'best.pt'}", f"--save_dir={root / 'store'}",
        "--run_id=new"], {}),
    "train --stats_path": lambda root: (train_cli.main, [
        *TINY_CAR1D, f"--stats_path={root / 'store' / RUN / 'best.pt'}", f"--save_dir={root / 'store'}",
        "--run_id=new"], {}),
    "read_jsonl": lambda root: (_read_timing_log, [str(root / "store" / RUN / "timing.jsonl")], {}),
}


# ----------------------------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    file: str                       # the damaged file, relative to the workspace
    damage: str                     # what was done to it
    apply: Damage
    command: str                    # a key of COMMANDS
    expect: str = "error"           # "error", "ok" or "remade"
    needles: tuple[str, ...] = ()   # besides the file's path, what the error line must say
    may_change: tuple[str, ...] = ()  # workspace paths (prefixes) the command legitimately writes

    @property
    def id(self) -> str:
        return f"{self.file.split('/')[-1]}-{self.damage}-{self.command}".replace(" ", "_")


RUN_JSON, METRICS, TIMING = f"store/{RUN}/run.json", f"store/{RUN}/metrics.jsonl", f"store/{RUN}/timing.jsonl"
SUMMARY, HISTORY = f"results/{SWEEP}/{RUN}/summary.json", f"results/{SWEEP}/{RUN}/history.csv"
OTHER_SUMMARY, OTHER_HISTORY = f"results/{SWEEP}/{OTHER}/summary.json", f"results/{SWEEP}/{OTHER}/history.csv"
SWEEP_JSON, SWEEP_YAML = f"store/_sweeps/{SWEEP}/sweep.json", "sweep.yaml"
BEST, CHECKPOINT_1 = f"store/{RUN}/best.pt", f"store/{RUN}/checkpoints/000001.pt"
RESTORE_RUN = ("restore run.json",)
OVERWRITE = ("--overwrite",)
REMAKE_RANDOM = ("python randomized_metric_helper.py --sweep_id=S",)
NEW_SWEEP = ("start a new sweep",)

CASES = [
    # run.json: every reader needs a JSON object with run_id, env_id, obs_dim, config.policy_dims
    *(Case(RUN_JSON, name, damage, "evaluate", needles=RESTORE_RUN) for name, damage in [
        ("empty", replaced(b"")), ("truncated", truncated), ("not-utf8", not_utf8), ("list", replaced(b"[]")),
        ("empty-object", replaced(b"{}")), ("no-env_id", json_edit(without("env_id"))),
        ("obs_dim-string", json_edit(setting("obs_dim", "two"))),
        ("policy_dims-string", json_edit(lambda info: info["config"].__setitem__("policy_dims", "c8,8"))),
        ("status-number", json_edit(setting("status", 3))), ("garbage", replaced(GARBAGE))]),
    Case(RUN_JSON, "list", replaced(b"[]"), "evaluate --run_id", needles=RESTORE_RUN),
    Case(RUN_JSON, "truncated", truncated, "randomized_metric_helper", needles=RESTORE_RUN),
    Case(RUN_JSON, "no-config", json_edit(without("config")), "randomized_metric_helper", needles=RESTORE_RUN),
    Case(RUN_JSON, "not-utf8", not_utf8, "sweep --resume", needles=RESTORE_RUN),
    Case(RUN_JSON, "empty-object", replaced(b"{}"), "sweep --resume", needles=RESTORE_RUN),
    Case(RUN_JSON, "truncated", truncated, "train --resume", needles=RESTORE_RUN),
    Case(RUN_JSON, "config-without-n_steps", json_edit(lambda info: without("n_steps")(info["config"])),
         "train --resume", needles=RESTORE_RUN),
    Case(RUN_JSON, "config-learning_rate-string", json_edit(lambda info: setting("learning_rate", "fast")(
        info["config"])), "train --resume", needles=RESTORE_RUN),
    Case(RUN_JSON, "env_id-number", json_edit(setting("env_id", 1)), "train --resume", needles=RESTORE_RUN),

    # metrics.jsonl: a torn last line is what a kill leaves; any other bad line is damage, named with its number
    Case(METRICS, "empty", replaced(b""), "evaluate", expect="ok"),
    Case(METRICS, "truncated", truncated, "evaluate", expect="ok"),
    Case(METRICS, "torn-last-line", appended(b'{"iteration": 3, "eval_ret'), "evaluate", expect="ok"),
    Case(METRICS, "torn-last-line-of-nul-bytes", appended(bytes(40)), "evaluate", expect="ok"),
    *(Case(METRICS, name, damage, "evaluate", needles=("line 1", "metrics.jsonl from a backup")) for name, damage in [
        ("not-utf8-line", first_line(lambda line: b"\xff\xfe" + line)),
        ("not-json-line", first_line(lambda line: line[:20])),
        ("list-line", first_line(lambda line: b"[]")),
        ("number-line", first_line(lambda line: b"7")),
        ("eval_return-string", first_line(line_edit(setting("eval_return", "high")))),
        ("no-iteration", first_line(line_edit(without("iteration")))),
        ("iteration-float", first_line(line_edit(setting("iteration", 0.5)))),
        ("garbage", replaced(GARBAGE))]),

    # timing.jsonl (read on resume): the same rules, through the library reader
    Case(TIMING, "torn-last-line", appended(b'{"fps": 1'), "read_jsonl", expect="ok"),
    Case(TIMING, "not-utf8-line", first_line(lambda line: b"\xff" + line), "read_jsonl", needles=("line 1",)),
    Case(TIMING, "list-line", first_line(lambda line: b"[1, 2]"), "read_jsonl", needles=("line 1",)),
    Case(TIMING, "empty-line", first_line(lambda line: b""), "read_jsonl", needles=("line 1",)),

    # summary.json of the run being evaluated: damage is named, never taken for "no earlier results"
    *(Case(SUMMARY, name, damage, "evaluate", needles=OVERWRITE) for name, damage in [
        ("empty", replaced(b"")), ("truncated", truncated), ("not-utf8", not_utf8), ("list", replaced(b"[]")),
        ("empty-object", replaced(b"{}")), ("no-fixed_trajectory", json_edit(without("fixed_trajectory"))),
        ("n-string", json_edit(setting("n", "eight"))),
        ("best-metric-string", json_edit(setting("best_num_regions_deterministic_fixed", "many"))),
        ("columns-numbers", json_edit(setting("columns", [1, 2]))), ("garbage", replaced(GARBAGE))]),
    Case(SUMMARY, "truncated", truncated, "evaluate --overwrite", expect="ok", may_change=("results/",)),
    # another run's summary.json, read when this SLURM task aggregates the sweep
    *(Case(OTHER_SUMMARY, name, damage, "evaluate, shard of S-000", needles=OVERWRITE) for name, damage in [
        ("truncated", truncated), ("not-utf8", not_utf8), ("no-run_id", json_edit(without("run_id"))),
        ("depth-string", json_edit(setting("depth", "deep"))), ("garbage", replaced(GARBAGE))]),

    # history.csv: read back when the earlier evaluation still holds, and for the sweep's figures
    *(Case(HISTORY, name, damage, "evaluate", needles=OVERWRITE) for name, damage in [
        ("empty", replaced(b"")), ("truncated", truncated), ("not-utf8", not_utf8), ("list", replaced(b"[]")),
        ("iteration-text", text_edit("\n0,", "\nabc,")), ("no-iteration-column", text_edit("iteration,", "iter,")),
        ("last-row-removed", lambda p: p.write_bytes(b"".join(p.read_bytes().splitlines(keepends=True)[:-1]))),
        ("extra-cell", text_edit("\n1,", "\n1,7,")), ("timesteps-text", text_edit("\n1,", "\n1,x")),
        ("repeated-row", lambda p: p.write_bytes(
            p.read_bytes() + p.read_bytes().split(b"\n")[1] + b"\n")),
        ("garbage", replaced(GARBAGE))]),
    Case(OTHER_HISTORY, "truncated", truncated, "evaluate, shard of S-000", needles=OVERWRITE),
    Case(OTHER_HISTORY, "not-utf8", not_utf8, "evaluate, shard of S-000", needles=OVERWRITE),

    # sweep.json: sweep.py --resume trusts it with run ids that become folder names
    *(Case(SWEEP_JSON, name, damage, "sweep --resume", needles=NEW_SWEEP) for name, damage in [
        ("empty", replaced(b"")), ("truncated", truncated), ("not-utf8", not_utf8), ("list", replaced(b"[]")),
        ("empty-object", replaced(b"{}")), ("no-run_ids", json_edit(without("run_ids"))),
        ("configs-string", json_edit(setting("configs", "abc"))),
        ("run-id-a-path", json_edit(setting("run_ids", ["../../outside", OTHER]))),
        ("fewer-run-ids", json_edit(setting("run_ids", [RUN]))),
        ("another-sweep", json_edit(setting("sweep_id", "T"))),
        ("garbage", replaced(GARBAGE))]),

    # the sweep file (written by the user, read by sweep.py)
    *(Case(SWEEP_YAML, name, damage, "sweep --dry_run") for name, damage in [
        ("not-utf8", not_utf8), ("empty", replaced(b"")), ("list", replaced(b"[]")), ("garbage", replaced(GARBAGE)),
        ("min-abc", replaced((RANDOM_SWEEP + "  learning_rate: {distribution: uniform, min: abc, max: 1}\n")
                             .encode())),
        ("max-infinite", replaced((RANDOM_SWEEP + "  learning_rate: {distribution: uniform, min: 0, max: .inf}\n")
                                  .encode())),
        ("int-min-fraction", replaced((RANDOM_SWEEP + "  seed: {distribution: int_uniform, min: 0.5, max: 3}\n")
                                      .encode())),
        ("q-zero", replaced((RANDOM_SWEEP + "  learning_rate: {distribution: q_uniform, min: 0, max: 1, q: 0}\n")
                            .encode())),
        ("distribution-list", replaced((RANDOM_SWEEP + "  seed: {distribution: [uniform], min: 0, max: 3}\n")
                                       .encode())),
        ("run_cap-text", replaced((RANDOM_SWEEP + "run_cap: many\n").encode())),
        ("number-keys", replaced((SWEEP_FILE_TEXT + "1: x\n").encode()))]),

    # trajectory caches are only an optimization: an unreadable one is sampled again, with a notice
    *(Case(BEST_CACHE, name, damage, "evaluate", expect="remade") for name, damage in [
        ("empty", replaced(b"")), ("truncated", truncated), ("bit-flipped", bit_flipped),
        ("garbage", replaced(GARBAGE)), ("npy", npy_file),
        ("states-integers", npz_edit(lambda a: a.__setitem__("states", a["states"].astype(np.int64)))),
        ("states-3-numbers", npz_edit(lambda a: a.__setitem__("states", np.zeros((len(a["states"]), 3))))),
        ("states-nan", npz_edit(nan_at("states"))),
        ("no-actions", npz_edit(lambda a: a.pop("actions"))),
        ("rewards-short", npz_edit(lambda a: a.__setitem__("rewards", a["rewards"][:-1]))),
        ("no-digest", npz_edit(lambda a: a.pop("digest")))]),
    Case(BEST_CACHE, "truncated", truncated, "randomized_metric_helper", expect="remade",
         may_change=("randomized_again/",)),
    Case(CHECKPOINT_CACHE, "truncated", truncated, "evaluate --overwrite", expect="remade", may_change=("results/",)),

    # random data: evaluate.py cannot re-make them; the error gives the command that does
    *(Case(LINES, name, damage, "evaluate", needles=REMAKE_RANDOM) for name, damage in [
        ("empty", replaced(b"")), ("truncated", truncated), ("bit-flipped", bit_flipped),
        ("garbage", replaced(GARBAGE)), ("npy", npy_file),
        ("points-3-numbers", npz_edit(lambda a: a.__setitem__("points", np.zeros((5, 3))))),
        ("points-integers", npz_edit(lambda a: a.__setitem__("points", a["points"].astype(np.int64)))),
        ("points-flat", npz_edit(lambda a: a.__setitem__("points", a["points"].ravel()))),
        ("points-nan", npz_edit(nan_at("points"))),
        ("no-points", npz_edit(lambda a: a.pop("points"))),
        ("another-env", npz_edit(lambda a: a.__setitem__("env_id", np.str_("Car1DEnv-v0")))),
        ("no-seed", npz_edit(lambda a: a.pop("seed")))]),
    *(Case(TRAJECTORIES, name, damage, "evaluate", needles=REMAKE_RANDOM) for name, damage in [
        ("truncated", truncated), ("garbage", replaced(GARBAGE)),
        ("lengths-too-long", npz_edit(lambda a: a.__setitem__("lengths", a["lengths"] + 1))),
        ("lengths-fractions", npz_edit(lambda a: a.__setitem__("lengths", a["lengths"] / 1.0))),
        ("no-lengths", npz_edit(lambda a: a.pop("lengths"))),
        ("states-strings", npz_edit(lambda a: a.__setitem__("states", a["states"].astype(str))))]),

    # checkpoints: best.pt is read before anything is evaluated
    *(Case(BEST, name, damage, "evaluate") for name, damage in [
        ("empty", replaced(b"")), ("truncated", truncated), ("bit-flipped", bit_flipped),
        ("garbage", replaced(GARBAGE)),
        ("a-list", checkpoint_edit(lambda state: [])), ("not-ours", checkpoint_edit(lambda state: {"x": 1})),
        ("no-layers", checkpoint_edit(no_layers)),
        ("only-the-head", checkpoint_edit(lambda s: s.__setitem__("policy", {
            "mean_net.0.weight": torch.zeros(1, 2), "mean_net.0.bias": torch.zeros(1),
            "log_std": s["policy"]["log_std"]}))),
        ("layer-missing", checkpoint_edit(lambda s: without("mean_net.2.weight")(s["policy"]))),
        ("layer-shapes-disagree", checkpoint_edit(in_policy("mean_net.2.weight", torch.zeros(8, 5)))),
        ("bias-shape", checkpoint_edit(in_policy("mean_net.2.bias", torch.zeros(3)))),
        ("weight-a-list", checkpoint_edit(in_policy("mean_net.0.weight", [[0.0, 0.0]] * 8))),
        ("weight-integers", checkpoint_edit(in_policy("mean_net.0.weight", torch.zeros(8, 2, dtype=torch.int64)))),
        ("log_std-shape", checkpoint_edit(in_policy("log_std", torch.zeros(2)))),
        ("obs_mean-shape", checkpoint_edit(lambda s: s["normalizer"].__setitem__("obs_mean", torch.zeros(3)))),
        ("obs_var-negative", checkpoint_edit(lambda s: s["normalizer"].__setitem__(
            "obs_var", -torch.ones(2, dtype=torch.float64)))),
        ("no-normalizer", checkpoint_edit(without("normalizer"))),
        ("iteration-string", checkpoint_edit(lambda s: s.__setitem__("iteration", "abc"))),
        ("eval_return-string", checkpoint_edit(lambda s: s.__setitem__("eval_return", "abc"))),
        ("config-a-list", checkpoint_edit(lambda s: s.__setitem__("config", [])))]),
    Case(BEST, "truncated", truncated, "randomized_metric_helper"),
    Case(BEST, "no-layers", checkpoint_edit(no_layers), "visualize --all_checkpoints"),
    Case(BEST, "no-layers", checkpoint_edit(no_layers), "train --pretrained_path"),
    Case(BEST, "value-shape", checkpoint_edit(lambda s: s["value"].__setitem__("net.0.weight", torch.zeros(3, 3))),
         "train --pretrained_path"),
    Case(BEST, "ret_mean-string", checkpoint_edit(lambda s: s["normalizer"].__setitem__("ret_mean", "abc")),
         "train --stats_path"),
    # every checkpoint: visualize --all_checkpoints loads them all before drawing
    *(Case(CHECKPOINT_1, name, damage, "visualize --all_checkpoints") for name, damage in [
        ("truncated", truncated), ("no-layers", checkpoint_edit(no_layers)),
        ("layer-shapes-disagree", checkpoint_edit(in_policy("mean_net.4.weight", torch.zeros(1, 3)))),
        ("bias-a-string", checkpoint_edit(in_policy("mean_net.0.bias", "zeros")))]),
    # evaluate.py evaluates the other checkpoints, lists this one in summary.json and ends with an error naming it
    Case(CHECKPOINT_1, "no-layers", checkpoint_edit(no_layers), "evaluate --overwrite", needles=("summary.json",),
         may_change=("results/",)),
]


# ----------------------------------------------------------------------------------------------------------------
# Running a case
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_in_process(main: Callable, argv: list[str], monkeypatch) -> Outcome:
    """main(argv) through the command lines' run_cli wrapper, in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    # run_cli points the fault handler at stderr's file descriptor, which a StringIO has not
    monkeypatch.setattr(faulthandler, "enable", lambda *args, **kwargs: None)
    # a command line has no logging set up, so notices reach stderr through Python's last-resort handler; pytest
    # collects log records instead, so route the project's logger to stderr here the same way
    logger = logging.getLogger("deep_rl_regions")
    handler = logging.StreamHandler(err)
    monkeypatch.setattr(logger, "propagate", False)
    logger.addHandler(handler)
    code = None
    try:
        with redirect_stdout(out), redirect_stderr(err):
            run_command_line(main, argv)
    except SystemExit as exit_:
        code = exit_.code
    finally:
        logger.removeHandler(handler)
    return Outcome(code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())


def _changed(before: dict[str, str], after: dict[str, str], allowed: tuple[str, ...]) -> list[str]:
    """Files added, removed or changed between two tree digests, except those under the `allowed` prefixes."""
    return sorted(p for p in set(before) | set(after)
                  if before.get(p) != after.get(p) and not p.startswith(allowed))


def _cache_arrays(path: Path) -> dict[str, np.ndarray]:
    return {k: v for k, v in load_npz(path).items() if k in ("states", "actions", "rewards", "env_id", "digest")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_damaged_file_is_input_not_a_crash(workspace, case, monkeypatch, tmp_path):
    root = workspace.restore()
    target = root / case.file
    case.apply(target)
    before = tree_digest(root)
    main, argv, environ = COMMANDS[case.command](root)
    monkeypatch.setenv(CRASH_DIR_ENV, str(tmp_path / "crashes"))  # a bug's traceback goes here, not to /tmp
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    outcome = run_in_process(main, argv, monkeypatch)
    assert "Traceback" not in outcome.stderr, outcome.stderr
    if case.expect == "error":
        assert outcome.code == 2, (outcome.code, outcome.stderr)
        assert len(outcome.stderr_lines) == 1, outcome.stderr
        line = outcome.stderr_lines[0]
        assert line.startswith("error: ") and str(target) in line, line
        for needle in case.needles:
            assert needle in line, (needle, line)
    else:
        assert outcome.code == 0, (outcome.code, outcome.stderr)
        notices = [line for line in outcome.stderr_lines if line.startswith("notice: ")]
        progress = [line for line in outcome.stderr_lines if re.match(r"\[\d+/\d+\] ", line)]
        assert sorted(notices + progress) == sorted(outcome.stderr_lines), outcome.stderr  # nothing else
        if case.expect == "remade":
            assert len(notices) == 1 and str(target) in notices[0], outcome.stderr
            remade, original = _cache_arrays(target), _cache_arrays(workspace.pristine / case.file)
            assert remade.keys() == original.keys()
            for key in original:
                assert np.array_equal(remade[key], original[key]), key
        else:
            assert notices == []
    allowed = case.may_change + ((case.file,) if case.expect == "remade" else ())
    assert _changed(before, tree_digest(root), allowed) == []


# the commands that read without training; visualize draws pictures (slow)
READ_ONLY_COMMANDS = [pytest.param(name, marks=[pytest.mark.slow] if name.startswith("visualize") else [])
                      for name in COMMANDS if not name.startswith(("train --pretrained", "train --stats"))]


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_every_command_reads_the_intact_workspace(workspace, command, monkeypatch):
    """The control for the table: undamaged, every command succeeds, says nothing on stderr and changes no file
    it does not write (so every error above comes from the damage)."""
    root = workspace.restore()
    before = tree_digest(root)
    main, argv, environ = COMMANDS[command](root)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    outcome = run_in_process(main, argv, monkeypatch)
    assert outcome.code == 0 and all(re.match(r"\[\d+/\d+\] ", line) for line in outcome.stderr_lines), \
        outcome.stderr  # progress lines only
    # --run_id of a sweep's run writes with the sweep's results; random data; pictures
    new_outputs = (f"results/{SWEEP}/{RUN}/", "randomized_again/", "plots/")
    assert _changed(before, tree_digest(root), new_outputs) == []


def test_the_table_covers_every_reader():
    """Each file that is read has cases, each command that reads one is used, and the ids are distinct."""
    files = {c.file for c in CASES}
    assert files == {RUN_JSON, METRICS, TIMING, SUMMARY, HISTORY, OTHER_SUMMARY, OTHER_HISTORY, SWEEP_JSON, SWEEP_YAML,
                     BEST_CACHE, CHECKPOINT_CACHE, LINES, TRAJECTORIES, BEST, CHECKPOINT_1}
    assert {c.command for c in CASES} == set(COMMANDS)
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.expect for c in CASES} == {"error", "ok", "remade"}


# ----------------------------------------------------------------------------------------------------------------
# The same from the outside: real processes
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("script,case_id", [
    ("evaluate.py", "run.json-not-utf8-evaluate"),
    ("evaluate.py", "metrics.jsonl-list-line-evaluate"),
    ("sweep.py", "sweep.yaml-not-utf8-sweep_--dry_run"),
    ("visualize_hd.py", "best.pt-no-layers-visualize_--all_checkpoints"),
])
def test_a_real_process_ends_with_one_line(workspace, script, case_id):
    (case,) = [c for c in CASES if c.id == case_id]
    root = workspace.restore()
    case.apply(root / case.file)
    before = tree_digest(root)
    _, argv, _ = COMMANDS[case.command](root)
    assert_one_line_error(run_cli(script, *argv), str(root / case.file), *case.needles)
    assert tree_digest(root) == before


@pytest.mark.slow
def test_a_real_process_remakes_a_damaged_cache_with_a_notice(workspace):
    root = workspace.restore()
    truncated(root / BEST_CACHE)
    result = run_cli("evaluate.py", *_evaluate_args(root))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("notice: trajectory cache") and str(root / BEST_CACHE) in lines[0]
    assert np.array_equal(load_npz(root / BEST_CACHE)["states"], load_npz(workspace.pristine / BEST_CACHE)["states"])
