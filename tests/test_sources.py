"""utils.analysis.sources: finding runs in the local run store (and, through a stand-in client, in wandb)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from models.checkpoint import save_checkpoint
from utils.analysis.sources import DOWNLOAD_COMPLETE, WANDB_CACHE, best_checkpoint, resolve_runs
from utils.errors import UserError
from utils.runs.store import RunPaths


def _run(store: Path, run_id: str, **info) -> Path:
    """A run directory with only a run.json holding what its readers rely on (all that resolving a local run reads)."""
    root = store / run_id
    root.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps({"run_id": run_id, "env_id": "Car1DEnv-v1", "obs_dim": 2,
                                               "config": {"policy_dims": [8]}, **info}))
    return root


def _checkpoint(path: Path, iteration: int, eval_return: float | None) -> Path:
    """A minimal well-formed checkpoint file (no real weights: only its stored eval return is read here)."""
    payload = {"iteration": iteration, "timesteps": 0, "config": {}, "policy": {}, "normalizer": {}}
    save_checkpoint(path, payload if eval_return is None else {**payload, "eval_return": eval_return})
    return path


@pytest.fixture
def store(tmp_path) -> Path:
    store = tmp_path / "store"
    _run(store, "r2", sweep_id="S")
    _run(store, "r1", sweep_id="S")
    _run(store, "w1", sweep_id="other", wandb_sweep_id="WS")
    _run(store, "solo")
    (store / "not_a_run").mkdir()  # no run.json: never listed
    return store


def test_local_run_by_id(store):
    (found,) = resolve_runs(store, run_id="r1")
    assert found.run_id == "r1" and found.run.root == store / "r1"
    assert found.source == "local" and found.info["sweep_id"] == "S"


def test_local_sweep_by_sweep_id_sorted_by_run_id(store):
    assert [r.run_id for r in resolve_runs(store, sweep_id="S")] == ["r1", "r2"]
    assert [r.run_id for r in resolve_runs(store, sweep_id="WS")] == ["w1"]  # a wandb sweep id matches too


def test_shard_takes_its_share_of_the_sorted_runs(store):
    assert [r.run_id for r in resolve_runs(store, sweep_id="S", shard=lambda runs: runs[1:])] == ["r2"]


def test_unknown_run_names_the_runs_that_exist(store):
    with pytest.raises(UserError) as err:
        resolve_runs(store, run_id="nosuch")
    message = str(err.value)
    assert "no run 'nosuch'" in message and "r1, r2, solo, w1" in message and "not_a_run" not in message
    assert "wandb not searched" in message and "--checkpoints_dir" in message


def test_unknown_sweep_and_empty_store(store, tmp_path):
    with pytest.raises(UserError, match="no sweep 'nosuch'.*runs there: r1"):
        resolve_runs(store, sweep_id="nosuch")
    with pytest.raises(UserError, match="runs there: none"):
        resolve_runs(tmp_path / "missing", run_id="x")


@pytest.mark.parametrize("ids", [{}, {"run_id": "r1", "sweep_id": "S"}])
def test_exactly_one_of_run_or_sweep(store, ids):
    with pytest.raises(UserError, match="exactly one of --run_id"):
        resolve_runs(store, **ids)


def test_wandb_is_not_asked_when_offline_or_without_entity(store):
    def no_api():
        raise AssertionError("the wandb API must not be created")
    for kwargs in ({"wandb_online": False, "entity": "me"}, {"wandb_online": True, "entity": None}):
        with pytest.raises(UserError, match="no run 'zzz'"):
            resolve_runs(store, run_id="zzz", api_factory=no_api, **kwargs)


def test_best_checkpoint_has_the_highest_stored_eval_return(tmp_path):
    run = RunPaths(tmp_path / "run")
    run.checkpoints_dir.mkdir(parents=True)
    _checkpoint(run.checkpoint(0), 0, None)
    _checkpoint(run.checkpoint(1), 1, 5.0)
    _checkpoint(run.checkpoint(2), 2, 7.0)
    _checkpoint(run.checkpoint(3), 3, 7.0)
    run.checkpoint(4).write_bytes(b"truncated")
    assert best_checkpoint(run) == run.checkpoint(2)  # the first on ties; the unreadable one is passed over
    for it in (1, 2, 3):
        _checkpoint(run.checkpoint(it), it, None)
    assert best_checkpoint(run) == run.checkpoint(4)  # no eval return anywhere: the newest


class _Artifact:
    def __init__(self, run_id: str, iteration: int, source: Path):
        self.name, self.metadata, self._source = f"checkpoints-{run_id}:v{iteration}", {"iteration": iteration}, source

    def download(self, root: str) -> str:
        (Path(root) / f"{self.metadata['iteration']:06d}.pt").write_bytes(self._source.read_bytes())
        return root


def test_a_wandb_run_is_downloaded_once_into_the_cache(tmp_path):
    sources = [_checkpoint(tmp_path / f"src{i}.pt", i, float(r)) for i, r in enumerate((1.0, 3.0, 2.0))]
    downloads = []

    class Remote(SimpleNamespace):
        def logged_artifacts(self):
            downloads.append(self.id)
            return [_Artifact(self.id, i, p) for i, p in enumerate(sources)]

    remote = Remote(id="wr", name="nice-name", state="finished", config={"env_id": "Car1DEnv-v1", "obs_dim": 2,
                                                                              "policy_dims": [8]})
    api = SimpleNamespace(run=lambda path: remote)
    store = tmp_path / "store"
    (found,) = resolve_runs(store, run_id="wr", entity="me", wandb_online=True, api_factory=lambda: api)
    assert found.source == "wandb" and found.run.root == store / WANDB_CACHE / "wr"
    assert [i for i, _ in found.run.list_checkpoints()] == [0, 1, 2]
    assert found.run.best.read_bytes() == sources[1].read_bytes()
    assert (found.run.root / DOWNLOAD_COMPLETE).is_file()
    assert found.info["source"] == "wandb:me/deep_rl_regions/wr" and found.info["run_name"] == "nice-name"
    resolve_runs(store, run_id="wr", entity="me", wandb_online=True, api_factory=lambda: api)
    assert downloads == ["wr"]  # complete downloads are reused
