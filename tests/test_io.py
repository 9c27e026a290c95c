"""Atomic writes: no temporary files left behind, ordinary permissions, pickle-free npz."""
import os

import numpy as np
import pytest

from utils.runs.io import load_npz, read_jsonl, append_jsonl, save_npz_atomic, write_json_atomic


def test_atomic_files_get_the_umask_permissions_and_no_leftovers(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    # mkstemp alone would leave 0o600: results must be as readable as any file the user creates
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_npz_round_trip_refuses_objects(tmp_path):
    save_npz_atomic(tmp_path / "d.npz", states=np.arange(6.0).reshape(3, 2))
    assert np.array_equal(load_npz(tmp_path / "d.npz")["states"], np.arange(6.0).reshape(3, 2))
    np.savez(tmp_path / "evil.npz", obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        load_npz(tmp_path / "evil.npz")


def test_jsonl_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"iteration": 0})
    append_jsonl(path, {"iteration": 1})
    with open(path, "a") as fh:
        fh.write('{"iteration": 2, "tor')
    assert [r["iteration"] for r in read_jsonl(path)] == [0, 1]
    write_json_atomic(tmp_path / "x.json", {"a": np.float64(1.5)})


def test_a_torn_npz_is_a_value_error_not_a_zip_error(tmp_path):
    """Callers treat ValueError as "unreadable, re-create it"; a torn archive must not escape as BadZipFile."""
    path = tmp_path / "d.npz"
    save_npz_atomic(path, states=np.arange(600.0).reshape(300, 2), lengths=np.array([300]))
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], data[:-30], data[:4]):
        path.write_bytes(damaged)
        with pytest.raises(ValueError):
            load_npz(path)


def test_torn_random_data_names_the_command_that_remakes_it(tmp_path):
    from utils.analysis.random_data import load_random_data, trajectories_path
    from utils.errors import UserError
    path = trajectories_path(tmp_path, "S", "Car1DEnv-v1")
    save_npz_atomic(path, states=np.zeros((10, 2)), lengths=np.array([4, 6]))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="unreadable.*make it"):
        load_random_data(tmp_path, "S", "Car1DEnv-v1", 2, lines=False, trajectories=True, fix_command="make it")
