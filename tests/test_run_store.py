"""utils/runs/store.py: the run store's directories, ids, checkpoint listing, run.json, the run lock, log
truncation on resume, and the checks that turn a bad directory into one UserError."""
from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import tree_digest
from utils.errors import UserError
from utils.runs.io import append_jsonl
from utils.runs.store import (RunPaths, check_writable_dir, create_run, find_run, is_run_locked,
                              iteration_logs_up_to, list_run_ids, new_run_id, read_run_info, run_lock,
                              update_run_info, write_iteration_logs, write_run_info)


# The keys every reader of run.json relies on (train.py writes many more).
MINIMAL_INFO = {"env_id": "Car1DEnv-v1", "obs_dim": 2, "config": {"policy_dims": [8, 8]}}


def make_run(save_dir: Path, run_id: str, **info) -> RunPaths:
    run = create_run(save_dir, run_id)
    write_run_info(run, {"run_id": run_id, "status": "running", **MINIMAL_INFO, **info})
    return run


def test_new_run_ids_look_like_wandb_ids_and_do_not_repeat():
    ids = [new_run_id() for _ in range(300)]
    assert all(re.fullmatch(r"[a-z0-9]{8}", i) for i in ids), ids[:5]
    assert len(set(ids)) == len(ids)


def test_create_run_makes_an_empty_run_and_refuses_an_existing_id(tmp_path):
    save_dir = tmp_path / "not" / "yet" / "there"
    run = create_run(save_dir, "r1")
    assert run.root == save_dir / "r1" and run.run_id == "r1"
    assert run.checkpoints_dir.is_dir() and not any(run.checkpoints_dir.iterdir())
    assert run.run_json == run.root / "run.json" and run.metrics == run.root / "metrics.jsonl"
    assert run.best == run.root / "best.pt" and run.trajectories_dir == run.root / "trajectories"
    assert run.checkpoint(7) == run.checkpoints_dir / "000007.pt"
    (run.root / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="--resume=r1") as info:
        create_run(save_dir, "r1")
    assert "\n" not in str(info.value) and "already exists" in str(info.value)
    assert (run.root / "keep.txt").read_text() == "mine"  # the existing run is left alone


def test_find_run_by_id_or_directory(tmp_path):
    store = tmp_path / "store"
    a = make_run(store, "a")
    make_run(store, "b")
    assert find_run(store, "a").root == a.root
    elsewhere = make_run(tmp_path / "elsewhere", "c")
    assert find_run(store, str(elsewhere.root)).root == elsewhere.root  # a directory anywhere
    assert find_run(tmp_path / "unused", str(a.root)).root == a.root


def test_a_missing_run_names_the_runs_there_and_the_fix(tmp_path):
    store = tmp_path / "store"
    make_run(store, "alpha")
    make_run(store, "beta")
    (store / "half").mkdir()  # a directory without run.json is not a run
    for missing in ("nosuch", "half", str(tmp_path / "nowhere")):
        with pytest.raises(UserError) as info:
            find_run(store, missing)
        message = str(info.value)
        assert f"no run '{missing}'" in message and "\n" not in message
        assert "alpha" in message and "beta" in message  # what is there
        assert "pass an existing run id or run directory" in message  # the fix
    with pytest.raises(UserError, match="none"):
        find_run(tmp_path / "empty", "x")


def test_list_run_ids_lists_only_runs_sorted(tmp_path):
    assert list_run_ids(tmp_path / "missing") == []
    for run_id in ("zeta", "alpha", "m1"):
        make_run(tmp_path, run_id)
    (tmp_path / "_sweeps" / "s").mkdir(parents=True)
    (tmp_path / "no_json").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert list_run_ids(tmp_path) == ["alpha", "m1", "zeta"]


def test_list_checkpoints_in_iteration_order_ignoring_other_files(tmp_path):
    run = create_run(tmp_path, "r")
    assert RunPaths(tmp_path / "none").list_checkpoints() == []  # no checkpoints directory yet
    for iteration in (10, 2, 1_000_000, 0, 999_999, 100):
        run.checkpoint(iteration).write_bytes(b"x")
    for foreign in ("best.pt", ".000003.pt.abc.tmp", "000004.pt.tmp", "00005.pt", "000006.pth", "notes.txt",
                    "abcdef.pt", "000007.pt~"):
        (run.checkpoints_dir / foreign).write_bytes(b"x")
    listed = run.list_checkpoints()
    assert [i for i, _ in listed] == [0, 2, 10, 100, 999_999, 1_000_000]  # numeric order, 7 digits after 6
    assert [p for _, p in listed] == [run.checkpoint(i) for i in (0, 2, 10, 100, 999_999, 1_000_000)]


def test_run_info_round_trip_and_update(tmp_path):
    run = create_run(tmp_path, "r")
    write_run_info(run, {"run_id": "r", "status": "running", **MINIMAL_INFO})
    info = read_run_info(run)
    assert info["status"] == "running" and info["config"] == {"policy_dims": [8, 8]}
    datetime.fromisoformat(info["updated"])  # stamped on every write
    merged = update_run_info(run, status="finished", wandb={"id": "r"})
    assert merged == read_run_info(run)
    assert merged["status"] == "finished" and merged["wandb"] == {"id": "r"}
    assert merged["config"] == {"policy_dims": [8, 8]} and merged["run_id"] == "r"  # the rest is kept
    assert json.loads(run.run_json.read_text()) == merged
    assert sorted(p.name for p in run.root.iterdir()) == ["checkpoints", "run.json"]  # no temporary files


def test_run_info_is_replaced_atomically(tmp_path, monkeypatch):
    run = make_run(tmp_path, "r", config={"seed": 1, "policy_dims": [4]})
    before = run.run_json.read_bytes()
    with pytest.raises(TypeError):  # not JSON: nothing is written
        update_run_info(run, status=object())
    assert run.run_json.read_bytes() == before

    def crash(*args, **kwargs):
        raise OSError("power cut before the rename")

    monkeypatch.setattr(os, "replace", crash)
    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="power cut"):
        update_run_info(run, status="finished")
    monkeypatch.undo()
    assert run.run_json.read_bytes() == before  # the old run.json, whole
    assert sorted(p.name for p in run.root.iterdir()) == ["checkpoints", "run.json"]  # temporary file removed


def test_damaged_run_json_is_a_user_error_naming_the_file(tmp_path):
    run = make_run(tmp_path, "r")
    run.run_json.write_text('{"status": "runn')
    with pytest.raises(UserError, match="run.json") as info:
        read_run_info(run)
    assert "damaged" in str(info.value) and "\n" not in str(info.value)


def test_run_lock_excludes_a_second_holder(tmp_path):
    run = make_run(tmp_path, "r")
    assert not is_run_locked(run)
    with run_lock(run):
        assert is_run_locked(run)
        with pytest.raises(UserError, match="another process") as info:
            with run_lock(run):
                pass
        assert "run r" in str(info.value) and "\n" not in str(info.value)
        assert is_run_locked(run)  # the refused attempt did not take the lock away from its holder
    assert not is_run_locked(run)
    with pytest.raises(RuntimeError):
        with run_lock(run):
            raise RuntimeError("training crashed")
    assert not is_run_locked(run)  # released on the way out of an error too
    with run_lock(run):  # and can be taken again
        assert is_run_locked(run)


def test_iteration_logs_up_to_an_iteration_are_chosen_first_and_written_later(tmp_path):
    run = make_run(tmp_path, "r")
    timing = run.root / "timing.jsonl"
    for iteration in range(5):
        append_jsonl(run.metrics, {"iteration": iteration, "eval_return": float(iteration)})
        append_jsonl(timing, {"iteration": iteration, "seconds": 1.0})
    with open(run.metrics, "a") as fh:
        fh.write('{"iteration": 5, "eval_ret')  # torn by the crash that made the resume necessary
    before = tree_digest(run.root)
    kept = iteration_logs_up_to(run, 2)
    assert tree_digest(run.root) == before  # choosing writes nothing
    write_iteration_logs(kept)
    lines = run.metrics.read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [0, 1, 2]
    assert json.loads(lines[1]) == {"iteration": 1, "eval_return": 1.0}
    assert [json.loads(line)["iteration"] for line in timing.read_text().splitlines()] == [0, 1, 2]
    write_iteration_logs(iteration_logs_up_to(run, 2))  # idempotent
    assert len(run.metrics.read_text().splitlines()) == 3
    write_iteration_logs(iteration_logs_up_to(run, -1))  # starting again from the beginning
    assert run.metrics.read_text() == timing.read_text() == ""
    assert not list(run.root.glob("*.tmp")) and not list(run.root.glob(".*.tmp"))


def _read_only_dir(tmp_path: Path) -> Path:
    path = tmp_path / "read_only"
    path.mkdir()
    path.chmod(0o500)
    if not os.access(path, os.W_OK) or not os.access(path, os.X_OK):
        return path
    if os.path.isdir("/proc/self") and not os.access("/proc/self", os.W_OK):
        return Path("/proc/self")  # root ignores permission bits; procfs still refuses
    pytest.skip("no directory here that this user cannot write to")


def test_check_writable_dir_creates_or_refuses_with_the_flag(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_writable_dir(target, "--save_dir") == target and target.is_dir()
    assert check_writable_dir(target, "--save_dir") == target  # existing is fine
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for bad in (blocker, blocker / "sub"):
        with pytest.raises(UserError) as info:
            check_writable_dir(bad, "--results_dir")
        message = str(info.value)
        assert str(bad) in message and "--results_dir=DIR" in message and "\n" not in message
    assert blocker.read_text() == "x"
    read_only = _read_only_dir(tmp_path)
    try:
        with pytest.raises(UserError, match="not writable") as info:
            check_writable_dir(read_only, "--save_dir")
        assert "--save_dir=DIR" in str(info.value)
    finally:
        if read_only.is_relative_to(tmp_path):
            read_only.chmod(0o700)
