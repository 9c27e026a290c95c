"""utils.jobs.randomize (randomized_metric_helper.py's library) and the command evaluation prints for it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import randomized_metric_helper
from models.checkpoint import save_checkpoint
from tests.helpers import small_trainer
from utils.analysis.random_data import load_random_data, random_data_command
from utils.errors import UserError
from utils.flags import parse_settings
from utils.jobs.randomize import write_random_data
from utils.runs.io import load_npz
from utils.settings import RandomizeSettings


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A run store with one untrained Car1D run of sweep S (run.json and best.pt: all random data need)."""
    store = tmp_path_factory.mktemp("store")
    trainer = small_trainer(policy_dims=(8, 8), norm_warmup_steps=20)
    trainer.warmup()
    (store / "r1").mkdir()
    save_checkpoint(store / "r1" / "best.pt", trainer.state_dict())
    (store / "r1" / "run.json").write_text(json.dumps({"run_id": "r1", "env_id": "Car1DEnv-v1", "obs_dim": 2,
                                                       "sweep_id": "S", "config": {"policy_dims": [8, 8]}}))
    return store


def test_random_data_of_a_sweep_are_written_seeded_and_readable(store, tmp_path):
    settings = RandomizeSettings(sweep_id="S", checkpoints_dir=store, randomized_data_dir=tmp_path / "data", num_random_lines=7,
                                 num_random_trajectories=2, seed=3)
    report = write_random_data(settings)
    assert report.data_id == "S" and [r.run_id for r in report.runs] == ["r1"]
    assert [p.name for p in report.files] == ["Car1DEnv-v1_random_lines.npz", "Car1DEnv-v1_random_trajectories.npz"]
    assert all(p.parent == tmp_path / "data" / "S" for p in report.files)
    data = load_random_data(tmp_path / "data", "S", "Car1DEnv-v1", 2, lines=True, trajectories=True, fix_command="x")
    assert data.line_points.shape == (7, 2) and [len(t) for t in data.trajectories] == [1000, 1000]
    assert int(load_npz(report.files[0])["seed"]) == 3
    again = write_random_data(settings)  # seeded: the same data again
    assert load_random_data(tmp_path / "data", "S", "Car1DEnv-v1", 2, lines=True, trajectories=True,
                            fix_command="x").digest() == data.digest()
    assert again.files == report.files


def test_unknown_run_is_one_user_error_and_writes_nothing(store, tmp_path):
    with pytest.raises(UserError, match="no run 'nosuch'.*runs there: r1"):
        write_random_data(RandomizeSettings(run_id="nosuch", checkpoints_dir=store, randomized_data_dir=tmp_path / "data"))
    assert not list((tmp_path / "data").rglob("*.npz"))


def test_command_line_prints_the_files(store, tmp_path, capsys):
    code = randomized_metric_helper.main(["--run_id=r1", f"--checkpoints_dir={store}", f"--save_dir={tmp_path}",
                                          "--num_random_lines=3", "--num_random_trajectories=1"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0] == "random data for 1 run(s) of r1:"
    assert lines[1:] == [f"  {tmp_path / 'r1' / 'Car1DEnv-v1_random_lines.npz'}",
                         f"  {tmp_path / 'r1' / 'Car1DEnv-v1_random_trajectories.npz'}"]


@pytest.mark.parametrize("ids", [{"run_id": "r1", "sweep_id": None}, {"run_id": None, "sweep_id": "S"}])
def test_the_printed_command_writes_where_evaluation_reads(tmp_path, ids):
    command = random_data_command(**ids, checkpoints_dir=tmp_path / "store", save_dir=tmp_path / "data")
    words = command.split()
    assert words[:2] == ["python", "randomized_metric_helper.py"]
    settings = parse_settings(RandomizeSettings, words[2:], "randomized_metric_helper.py", "")
    assert (settings.run_id, settings.sweep_id) == (ids["run_id"], ids["sweep_id"])
    assert settings.checkpoints_dir == tmp_path / "store" and settings.randomized_data_dir == tmp_path / "data"
    assert settings.result_id == (ids["run_id"] or ids["sweep_id"])
