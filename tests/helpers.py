"""Shared test helpers: running the CLIs as a user would (as a process or in-process), and snapshotting a tree."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

import pytest

from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

# train.py flags for runs small enough to train inside a test (a few seconds each); later flags override these.
TINY_CAR1D = ["--env=Car1DEnv-v1", "--total_timesteps=400", "--nsteps=100", "--n_envs=2", "--batch_size=50",
              "--n_epochs=2", "--policy_dims=c8,8", "--value_dims=c8", "--eval_episodes=1",
              "--norm_warmup_steps=20", "--quiet"]
# TINY_CAR1D as the `parameters:` lines of a sweep file (indented under `parameters:`)
TINY_SWEEP_PARAMS = """
  env: {value: Car1DEnv-v1}
  total_timesteps: {value: 400}
  nsteps: {value: 100}
  n_envs: {value: 2}
  batch_size: {value: 50}
  n_epochs: {value: 2}
  value_dims: {value: "c8"}
  eval_episodes: {value: 1}
  norm_warmup_steps: {value: 20}
"""
TINY_CHEETAH = ["--env=HalfCheetah-v5", "--total_timesteps=200", "--nsteps=50", "--n_envs=2", "--batch_size=50",
                "--n_epochs=1", "--policy_dims=c16,16", "--value_dims=c8", "--eval_episodes=1",
                "--norm_warmup_steps=20", "--quiet"]


def run_cli(script: str, *args: str, env: dict | None = None, timeout: float = 300, cwd: Path | None = None):
    """Run `python <script> args...` from the repo root with wandb disabled unless `env` says otherwise."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd or ROOT)


def train_run(save_dir: Path, run_id: str, *flags: str) -> Path:
    """Train a run with train.py's main(argv) in this process (no interpreter start-up); returns the run directory."""
    import train

    with contextlib.redirect_stdout(io.StringIO()):
        assert train.main([*flags, f"--save_dir={save_dir}", f"--run_id={run_id}"]) == 0
    return Path(save_dir) / run_id


def assert_user_error(main: Callable[[list[str]], object], argv: Sequence[str], *needles: str) -> str:
    """main(argv) raises UserError with a one-line message containing every needle (case-insensitive), and
    prints nothing on stderr first; so the CLI wrapper would show exactly one `error: ...` line. Returns the message."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(UserError) as info:
        main(list(argv))
    message = str(info.value).strip()
    assert message and "\n" not in message, (list(argv), message)
    for needle in needles:
        assert needle.lower() in message.lower(), (needle, message)
    assert stderr.getvalue() == "", (list(argv), stderr.getvalue())
    return message


def write_policy_checkpoint(path: Path, layers: Sequence, head: tuple, obs_mean, obs_var, *, mode: str = "running",
                            log_std: float = -1.0, iteration: int = 0) -> Path:
    """A policy checkpoint in train.py's on-disk format (float32 weights, float64 statistics), built from hidden
    (W, b) pairs and the head, for tests that need a policy whose weights they choose."""
    import numpy as np
    import torch

    from models.checkpoint import save_checkpoint

    def f32(value):
        return torch.as_tensor(np.asarray(value), dtype=torch.float32)

    weights = {}
    for i, (W, b) in enumerate([*layers, head]):  # nn.Sequential numbering: Linear, ReLU, Linear, ...
        weights[f"mean_net.{2 * i}.weight"], weights[f"mean_net.{2 * i}.bias"] = f32(W), f32(b)
    save_checkpoint(Path(path), {
        "iteration": iteration, "timesteps": 100 * iteration, "config": {},
        "policy": {**weights, "log_std": f32([log_std] * len(head[1]))},
        "normalizer": {"mode": mode, "obs_mean": torch.as_tensor(np.asarray(obs_mean, dtype=np.float64)),
                       "obs_var": torch.as_tensor(np.asarray(obs_var, dtype=np.float64))},
    })
    return Path(path)


def tree_digest(path: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below `path` (to prove nothing on disk changed)."""
    path = Path(path)
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def assert_one_line_error(result, *needles: str) -> None:
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])


def small_config(**overrides):
    """A Car1D TrainConfig (policy 8,4, value 8; 2 iterations of 2 x 64 steps): TrainConfig has no defaults for flag
    values, so every one is spelled out here once for the tests."""
    from models.training import TrainConfig

    values = dict(env="Car1DEnv-v1", env_id="Car1DEnv-v1", obs_dim=2, act_dim=1, policy_dims=(8, 4), value_dims=(8,),
                  total_timesteps=256, n_steps=64, n_envs=2, batch_size=64, n_epochs=10, learning_rate=3e-4,
                  log_std_init=-2.0, seed=0, eval_every=1, eval_episodes=5, save_every=1, obs_norm="running",
                  norm_warmup_steps=100, device="cpu", subprocess_envs=False)
    return TrainConfig(**{**values, **overrides})


def small_trainer(**overrides):
    """An untrained Trainer of small_config(**overrides)."""
    from models.training import Trainer

    return Trainer(small_config(**overrides))
