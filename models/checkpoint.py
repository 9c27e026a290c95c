"""Checkpoints: one torch.save of plain tensors and primitives, loaded only with torch.load(weights_only=True)."""
from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from models.mlp import torch_mlp
from models.normalization import normalization_affine, normalize_with
from utils.errors import UserError
from utils.runs.io import torch_save_atomic

FORMAT = "deep_rl_regions.checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("format", "iteration", "timesteps", "config", "policy", "normalizer")


def config_digest(config: Mapping) -> str:
    """sha256 (hex) of a run's config dict (TrainConfig.to_dict()) as canonical JSON, `device` left out: the
    same run may be resumed on another device, every other value makes it another run."""
    portable = {key: value for key, value in config.items() if key != "device"}
    return hashlib.sha256(json.dumps(portable, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write a checkpoint payload atomically (a crash never leaves a half-written file under `path`)."""
    torch_save_atomic(path, {"format": FORMAT, "format_version": FORMAT_VERSION, **payload})


def read_checkpoint(path: Path | str) -> dict:
    """The raw checkpoint dict; refuses files that are missing, truncated, not ours, or would need unsafe pickle."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}; pass the path of a .pt file written by train.py")
    if not zipfile.is_zipfile(path):  # torch.save always writes a zip archive; anything else is not ours
        raise UserError(f"{path} is not a checkpoint written by train.py (truncated, corrupt or another format); "
                        f"pass a .pt file from a run's checkpoints/ directory")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise UserError(f"refusing to load {path}: it is not a plain-tensor checkpoint ({first[:120]}); "
                        f"only checkpoints written by train.py can be loaded") from None
    except Exception as err:  # a damaged archive can fail in many ways inside torch; all mean the same to the user
        raise UserError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}); "
                        f"use another checkpoint of the run or re-train") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(k not in state for k in _REQUIRED):
        raise UserError(f"{path} is not a deep_rl_regions checkpoint; pass a .pt file written by train.py")
    return state


@dataclass
class LoadedPolicy:
    """A checkpoint's policy as the region analysis sees it: hidden (W, b) layers on normalized observations."""

    path: Path
    iteration: int
    timesteps: int
    config: dict
    hidden_layers: list[tuple[torch.Tensor, torch.Tensor]]  # float64, W (out, in), applied as relu(W x + b)
    head: tuple[torch.Tensor, torch.Tensor]                 # float64 linear map to the action mean
    log_std: torch.Tensor
    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_norm_enabled: bool
    eval_return: float | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer of the action-mean network, hidden layers then the head."""
        return [*self.hidden_layers, self.head]

    @property
    def obs_dim(self) -> int:
        return int(self.hidden_layers[0][0].shape[1] if self.hidden_layers else self.head[0].shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.head[0].shape[0])

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(int(W.shape[0]) for W, _ in self.hidden_layers)

    @property
    def n_neurons(self) -> int:
        return sum(self.widths)

    @property
    def n_params(self) -> int:
        """Policy weights and biases, output head included, log-std excluded."""
        return sum(W.numel() + b.numel() for W, b in self.layers)

    @property
    def weights_digest(self) -> str:
        """A short hash of everything that shapes the policy's regions and actions (weights, log-std, statistics)."""
        h = hashlib.sha256()
        for t in [*(x for layer in self.layers for x in layer), self.log_std]:
            h.update(t.detach().cpu().numpy().tobytes())
        h.update(np.ascontiguousarray(self.obs_mean).tobytes())
        h.update(np.ascontiguousarray(self.obs_var).tobytes())
        return h.hexdigest()[:16]

    def normalize(self, states: np.ndarray) -> np.ndarray:
        """Raw states -> the policy's input space, with the statistics this checkpoint was trained with."""
        return normalize_with(states, self.obs_mean, self.obs_var, self.obs_norm_enabled)

    def normalization_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(shift, scale) with normalize(s) = clip((s - shift) / scale); (0, 1) when normalization is off."""
        return normalization_affine(self.obs_mean, self.obs_var, self.obs_norm_enabled)

    def action_mean(self, states: np.ndarray) -> np.ndarray:
        """Deterministic action (mean of the Gaussian, before clipping) for raw states, float64."""
        return torch_mlp(self.layers, torch.as_tensor(self.normalize(states), dtype=torch.float64)).numpy()

    def with_statistics(self, other: "LoadedPolicy") -> "LoadedPolicy":
        """This policy with another checkpoint's normalization statistics (the paper's --stats_path)."""
        if other.obs_mean.shape != self.obs_mean.shape:
            raise UserError(f"statistics in {other.path} are for {other.obs_mean.shape[0]} observations, "
                            f"the policy in {self.path} takes {self.obs_dim}; pass a checkpoint of the same env")
        return LoadedPolicy(self.path, self.iteration, self.timesteps, self.config, self.hidden_layers, self.head,
                            self.log_std, other.obs_mean, other.obs_var, other.obs_norm_enabled, self.eval_return,
                            self.raw)


def policy_from_state(path: Path, state: dict) -> LoadedPolicy:
    """Build a LoadedPolicy from a raw checkpoint dict."""
    policy = state["policy"]
    n_linear = len([k for k in policy if k.startswith("mean_net.") and k.endswith(".weight")])
    try:
        # nn.Sequential numbering: Linear at 0, 2, 4, ... (ReLUs in between)
        linears = [(policy[f"mean_net.{2 * i}.weight"].double(), policy[f"mean_net.{2 * i}.bias"].double())
                   for i in range(n_linear)]
        norm = state["normalizer"]
        obs_mean, obs_var = norm["obs_mean"].double().numpy(), norm["obs_var"].double().numpy()
        log_std = policy["log_std"].double()
    except KeyError as err:
        raise UserError(f"{path} lacks {err} and is not a complete policy checkpoint; use one written by train.py") from None
    return LoadedPolicy(Path(path), int(state["iteration"]), int(state["timesteps"]), dict(state["config"]),
                        linears[:-1], linears[-1], log_std, obs_mean, obs_var, norm.get("mode", "running") != "off",
                        state.get("eval_return"), state)


def load_checkpoint(path: Path | str) -> LoadedPolicy:
    """Load a checkpoint's policy (hidden layers, head, log-std, normalization) safely."""
    return policy_from_state(Path(path), read_checkpoint(path))
