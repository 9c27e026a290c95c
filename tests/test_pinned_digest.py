"""Guard rail for refactoring: a short run with fixed flags and seed must give byte-identical metrics.jsonl and
identical checkpoint tensors. The digests were recorded before the restructuring (issue 16); a change that
alters them changes training numerically and must say so (update the digest in its own commit)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_CAR1D, TINY_CHEETAH

PINNED = {
    "car1d": ("80a510ded1671dccd02a3632d40f7bfe8325e3921c81d69ebfc27f0b0325834f",
              "7ddd6d215e665f75a0e152e82040ecda135fbf0c3c9bba32dde47a1aced3b2c1"),
    "cheetah": ("6dcfd9d6ce3a5d000c2717007e45ab2c3933a941d187c6fdb022eddbb8e95b65",
                "c78ca836d381a52076225b2471b332bf39461805d8e740a0f5df486d9a098a8c"),
}


def tensor_digest(value, h=None) -> str:
    """sha256 over every tensor of a (nested) checkpoint payload, keys in sorted order; other values ignored."""
    h = h or hashlib.sha256()
    if torch.is_tensor(value):
        h.update(str(value.dtype).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            h.update(str(key).encode())
            tensor_digest(value[key], h)
    elif isinstance(value, (list, tuple)):
        for item in value:
            tensor_digest(item, h)
    return h.hexdigest()


def run_digests(run_dir: Path) -> tuple[str, str]:
    metrics = hashlib.sha256((run_dir / "metrics.jsonl").read_bytes()).hexdigest()
    h = hashlib.sha256()
    for path in sorted((run_dir / "checkpoints").glob("*.pt")) + [run_dir / "best.pt"]:
        state = torch.load(path, map_location="cpu", weights_only=True)
        h.update(path.name.encode())
        h.update(tensor_digest({k: state[k] for k in ("policy", "value", "normalizer", "optimizer", "obs_norm")}).encode())
    return metrics, h.hexdigest()


@pytest.mark.parametrize("name, flags", [("car1d", TINY_CAR1D), ("cheetah", TINY_CHEETAH)])
def test_short_run_is_byte_identical_to_the_pinned_digests(tmp_path, name, flags):
    import train

    assert train.main([*flags, f"--save_dir={tmp_path}", "--run_id=pinned", "--seed=3", "--n_envs=2"]) == 0
    torch.set_num_threads(1)
    assert run_digests(tmp_path / "pinned") == PINNED[name]
