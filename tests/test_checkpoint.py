"""Checkpoint round trip, the public loader, and refusal of anything but plain tensors."""
import os
import pickle

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from tests.helpers import small_trainer
from utils.errors import UserError


def test_round_trip_and_loader(tmp_path):
    trainer = small_trainer()
    trainer.warmup()
    trainer.train_iteration()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, trainer.state_dict())
    loaded = load_checkpoint(path)
    assert loaded.iteration == 1 and loaded.timesteps == 128
    assert loaded.widths == (8, 4) and loaded.n_neurons == 12 and loaded.obs_dim == 2 and loaded.act_dim == 1
    assert loaded.n_params == (2 * 8 + 8) + (8 * 4 + 4) + (4 * 1 + 1)
    W0, b0 = loaded.hidden_layers[0]
    assert W0.dtype == torch.float64 and W0.shape == (8, 2)
    assert torch.equal(W0.float(), trainer.policy.mean_net[0].weight.detach())
    states = np.array([[0.5, -0.02], [80.0, 3.0]])
    expected = trainer.normalizer.normalize_obs(states)
    assert np.allclose(loaded.normalize(states), expected)
    with torch.no_grad():
        torch_mean = trainer.policy(torch.as_tensor(expected, dtype=torch.float32)).numpy()
    assert np.allclose(loaded.action_mean(states), torch_mean, atol=1e-5)
    # a second trainer restored from the checkpoint continues identically
    other = small_trainer()
    other.load_state_dict(read_checkpoint(path))
    m1, m2 = trainer.train_iteration(), other.train_iteration()
    for key in ("pg_loss", "vf_loss", "approx_kl"):
        assert m1[key] == m2[key]
    for p1, p2 in zip(trainer.policy.parameters(), other.policy.parameters()):
        assert torch.equal(p1, p2)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "deep_rl_regions.checkpoint", "payload": _Evil(marker)}, path)
    with pytest.raises(UserError, match="refusing to load") as err:
        load_checkpoint(path)
    assert not marker.exists()
    # the message names what was refused, in plain text: no terminal escapes, no advice to load it unsafely
    message = str(err.value)
    assert "posix.system" in message and "\x1b" not in message and "weights_only" not in message
    assert len(message) < 300 and "\n" not in message
    odd = tmp_path / "odd.pt"
    torch.save({"format": "deep_rl_regions.checkpoint", "when": __import__("datetime").date(2020, 1, 1)}, odd)
    with pytest.raises(UserError, match="datetime.date") as err:
        load_checkpoint(odd)
    assert "\x1b" not in str(err.value)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(UserError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_refuses_truncated_missing_and_foreign_files(tmp_path):
    trainer = small_trainer()
    path = tmp_path / "ok.pt"
    save_checkpoint(path, trainer.state_dict())
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated, corrupt"):
        load_checkpoint(cut)
    damaged = tmp_path / "damaged.pt"  # a valid zip directory with a damaged member
    damaged.write_bytes(data[:200] + bytes(len(data) - 400) + data[-200:])
    with pytest.raises(UserError, match="damaged.pt"):
        load_checkpoint(damaged)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(UserError, match="not a deep_rl_regions checkpoint"):
        load_checkpoint(foreign)


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    trainer = small_trainer()
    save_checkpoint(tmp_path / "a.pt", trainer.state_dict())
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
