"""Checkpoints: one torch.save of plain tensors and primitives, loaded only with torch.load(weights_only=True)."""
from __future__ import annotations

import hashlib
import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from models.mlp import numpy_mlp
from models.networks import numpy_layers, torch_mlp
from models.normalization import CLIP_OBS, EPSILON, ObsStatistics, normalization_affine, normalize_with
from utils.errors import UserError
from utils.runs.io import torch_save_atomic

FORMAT = "deep_rl_regions.checkpoint"
FORMAT_VERSION = 1
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of SAC's state-dependent log-std
_REQUIRED = ("format", "iteration", "timesteps", "config", "policy", "normalizer")


# What may differ between the checkpoints of one run: it may be resumed on another device, and --resume with a
# larger --total_timesteps extends it. Every other config value makes it another run.
NOT_IDENTITY = ("device", "total_timesteps")


def config_digest(config: Mapping) -> str:
    """sha256 (hex) of a run's config dict (TrainConfig.to_dict()) as canonical JSON, NOT_IDENTITY left out."""
    portable = {key: value for key, value in config.items() if key not in NOT_IDENTITY}
    return hashlib.sha256(json.dumps(portable, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write a checkpoint payload atomically (a crash never leaves a half-written file under `path`)."""
    torch_save_atomic(path, {"format": FORMAT, "format_version": FORMAT_VERSION, **payload})


_GLOBAL_RE = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _unsafe_content(err: Exception) -> str:
    """What torch's safe loader refused, in a few words: torch's message runs to a paragraph of advice (with
    terminal escapes) about loading the file unsafely, which is exactly what we must not suggest."""
    text = _ANSI_RE.sub("", str(err))
    found = _GLOBAL_RE.search(text)
    if found:
        return f"it holds the Python object {found.group(1)}, which loading would have to import or run"
    return "it holds Python objects beyond tensors and plain values"


def read_checkpoint(path: Path | str) -> dict:
    """The raw checkpoint dict; refuses files that are missing, truncated, not ours, or would need unsafe pickle."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}; pass the path of a .pt file written by train.py")
    if not zipfile.is_zipfile(path):  # torch.save always writes a zip archive; anything else is not ours
        raise UserError(f"{path} is not a checkpoint written by train.py (truncated, corrupt or another format); "
                        f"pass a .pt file from a run's checkpoints/ directory")
    # torch.load does not check the archive's checksums: a flipped bit in the weights would load silently
    try:
        with zipfile.ZipFile(path) as archive:
            failing_member = archive.testzip()
    except Exception as err:  # a damaged zip directory fails in many ways inside zipfile; all mean "corrupt"
        raise UserError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}); "
                        f"use another checkpoint of the run or re-train") from None
    if failing_member is not None:
        raise _damaged(path, f"its archive member {failing_member} fails its checksum")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"refusing to load {path}: it is not a plain-tensor checkpoint ({_unsafe_content(err)}); "
                        f"only checkpoints written by train.py can be loaded") from None
    except Exception as err:  # a damaged archive can fail in many ways inside torch; all mean the same to the user
        raise UserError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}); "
                        f"use another checkpoint of the run or re-train") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not a deep_rl_regions checkpoint; pass a .pt file written by train.py")
    problem = _header_problem(state)
    if problem is not None:
        raise _damaged(path, problem)
    return state


def _damaged(path: Path, problem: str) -> UserError:
    return UserError(f"checkpoint {path} is damaged ({problem}); use another checkpoint of the run or re-train")


def _header_problem(state: dict) -> str | None:
    """What is wrong with the plain values of a checkpoint in our format, None when nothing is."""
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        return f"no {', '.join(missing)}"
    for key in ("iteration", "timesteps"):
        if not _is_whole(state[key]) or state[key] < 0:
            return f"{key} is {_what(state[key])}, not a whole number >= 0"
    for key in ("config", "policy", "normalizer"):
        if not isinstance(state[key], dict):
            return f"{key} is {_what(state[key])}, not a dict"
    eval_return = state.get("eval_return")
    if eval_return is not None and (isinstance(eval_return, bool) or not isinstance(eval_return, (int, float))):
        return f"eval_return is {_what(eval_return)}, not a number"
    return None


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _what(value) -> str:
    """A value as an error message shows it: small scalars as themselves, anything else by its type."""
    if isinstance(value, (int, float, str)) and len(repr(value)) <= 30:
        return repr(value)
    if isinstance(value, torch.Tensor):
        return f"a {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')} tensor"
    return f"a {type(value).__name__}"


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
    # Normalization constants: ours are always CLIP_OBS and EPSILON; SB3 VecNormalize files carry their own.
    clip_obs: float = CLIP_OBS
    epsilon: float = EPSILON
    # Output squashing (policies read from SB3 files): None = the action is the head's output (our PPO, SB3's
    # PPO/A2C); "tanh" = action_low + (tanh(head) + 1) / 2 * (action_high - action_low), SB3's SAC and TD3 (their
    # predict() rescales the tanh output to the action space). The squash comes after the last linear layer, so
    # the regions are those of the ReLU layers either way; only actions (episodes, the 'action' colouring) see it.
    squash: str | None = None
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None
    # SAC's state-dependent log-std: a linear map (W, b) on the last hidden layer's output, clamped to
    # [LOG_STD_MIN, LOG_STD_MAX] as SB3 does; None = the state-independent `log_std` (then NaN for SAC).
    log_std_net: tuple[torch.Tensor, torch.Tensor] | None = None

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
        extras = self.extras_state()
        if extras or (self.clip_obs, self.epsilon) != (CLIP_OBS, EPSILON):  # our own policies hash as before
            h.update(repr((self.clip_obs, self.epsilon, extras.get("squash"))).encode())
            for key in sorted(k for k, v in extras.items() if isinstance(v, torch.Tensor)):
                h.update(extras[key].numpy().tobytes())
        return h.hexdigest()[:16]

    def extras_state(self) -> dict:
        """What a checkpoint stores beyond our PPO's own policy (key `policy_extras`): squash, action bounds, SAC's
        log-std net; {} for a policy of ours."""
        extras: dict = {}
        if self.squash is not None:
            extras.update(squash=self.squash, action_low=torch.from_numpy(np.asarray(self.action_low, np.float64)),
                          action_high=torch.from_numpy(np.asarray(self.action_high, np.float64)))
        if self.log_std_net is not None:
            extras.update({"log_std_net.weight": self.log_std_net[0], "log_std_net.bias": self.log_std_net[1]})
        return extras

    def squash_actions(self, z: np.ndarray) -> np.ndarray:
        """The action for head outputs z (N, act_dim): z itself, or for squash "tanh" z squashed and rescaled."""
        if self.squash is None:
            return z
        return self.action_low + 0.5 * (np.tanh(z) + 1.0) * (self.action_high - self.action_low)

    def actor(self) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
        """act(raw state (d,), standard normal noise (act_dim,) or None) -> the action (act_dim,) before the env
        clips it: mean (+ std * noise), squashed when the policy squashes. numpy float64, weights copied once."""
        layers = numpy_layers(self.layers)
        if self.log_std_net is None:
            std = np.exp(self.log_std.numpy())

            def act(state: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
                a = numpy_mlp(layers, self.normalize(state[None]))[0]
                if noise is not None:
                    a = a + std * noise
                return a if self.squash is None else self.squash_actions(a)
            return act
        W_std, b_std = (t.numpy() for t in self.log_std_net)

        def act_sac(state: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
            out, inputs = numpy_mlp(layers, self.normalize(state[None]), return_inputs=True)
            a = out[0]
            if noise is not None:
                log_std = np.clip(inputs[-1][0] @ W_std.T + b_std, LOG_STD_MIN, LOG_STD_MAX)
                a = a + np.exp(log_std) * noise
            return self.squash_actions(a)
        return act_sac

    def normalize(self, states: np.ndarray) -> np.ndarray:
        """Raw states -> the policy's input space, with the statistics this checkpoint was trained with."""
        return normalize_with(states, self.obs_mean, self.obs_var, self.obs_norm_enabled,
                              clip_obs=self.clip_obs, epsilon=self.epsilon)

    def normalization_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(shift, scale) with normalize(s) = clip((s - shift) / scale, -clip_obs, clip_obs); (0, 1) when
        normalization is off."""
        return normalization_affine(self.obs_mean, self.obs_var, self.obs_norm_enabled, self.epsilon)

    def action_mean(self, states: np.ndarray) -> np.ndarray:
        """Deterministic action (mean of the Gaussian, before clipping; squashed and rescaled for a squashing
        policy) for raw states, float64."""
        z = torch_mlp(self.layers, torch.as_tensor(self.normalize(states), dtype=torch.float64)).numpy()
        return self.squash_actions(z)

    def with_statistics(self, other: "LoadedPolicy | ObsStatistics") -> "LoadedPolicy":
        """This policy with another checkpoint's (or an SB3 VecNormalize file's) normalization statistics (the
        paper's --stats_path)."""
        if other.obs_mean.shape != self.obs_mean.shape:
            raise UserError(f"statistics in {other.path} are for {other.obs_mean.shape[0]} observations, "
                            f"the policy in {self.path} takes {self.obs_dim}; pass statistics of the same env")
        return replace(self, obs_mean=other.obs_mean, obs_var=other.obs_var, obs_norm_enabled=other.obs_norm_enabled,
                       clip_obs=other.clip_obs, epsilon=other.epsilon)


def policy_from_state(path: Path, state: dict) -> LoadedPolicy:
    """Build a LoadedPolicy from a raw checkpoint dict (as read_checkpoint returns it); a policy that is not a
    chain of float (W, b) layers, or normalization statistics of another size, is a UserError naming the file."""
    policy, norm = state["policy"], state["normalizer"]
    linears = _mean_net_layers(path, policy)
    obs_dim, act_dim = int(linears[0][0].shape[1]), int(linears[-1][0].shape[0])
    log_std = _float_tensor(path, policy, "log_std", (act_dim,), "policy")
    obs_mean = _float_tensor(path, norm, "obs_mean", (obs_dim,), "normalizer").numpy()
    obs_var = _float_tensor(path, norm, "obs_var", (obs_dim,), "normalizer").numpy()
    if not (np.isfinite(obs_mean).all() and np.isfinite(obs_var).all() and (obs_var >= 0).all()):
        raise _damaged(path, "its normalization statistics are not finite, or a variance is negative")
    mode = norm.get("mode", "running")
    if not isinstance(mode, str):
        raise _damaged(path, f"normalizer mode is {_what(mode)}, not a string")
    constants = {}
    for key, default in (("clip_obs", CLIP_OBS), ("epsilon", EPSILON)):
        value = norm.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < float("inf")):
            raise _damaged(path, f"normalizer {key} is {_what(value)}, not a positive number")
        constants[key] = float(value)
    extras = _policy_extras(path, state.get("policy_extras", {}), obs_dim, act_dim, linears)
    return LoadedPolicy(Path(path), state["iteration"], state["timesteps"], dict(state["config"]),
                        linears[:-1], linears[-1], log_std, obs_mean, obs_var, mode != "off",
                        state.get("eval_return"), state, **constants, **extras)


def _policy_extras(path: Path, extras, obs_dim: int, act_dim: int, linears: list) -> dict:
    """LoadedPolicy's squash / action bounds / SAC log-std net from a checkpoint's `policy_extras` (written for
    policies imported from SB3 files; absent from our own runs' checkpoints)."""
    if not isinstance(extras, dict):
        raise _damaged(path, f"policy_extras is {_what(extras)}, not a dict")
    found: dict = {}
    squash = extras.get("squash")
    if squash is not None:
        if squash != "tanh":
            raise _damaged(path, f"policy_extras squash is {_what(squash)}, not 'tanh'")
        low = _float_tensor(path, extras, "action_low", (act_dim,), "policy_extras").numpy()
        high = _float_tensor(path, extras, "action_high", (act_dim,), "policy_extras").numpy()
        if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
            raise _damaged(path, "its action bounds are not finite with low < high")
        found.update(squash="tanh", action_low=low, action_high=high)
    if "log_std_net.weight" in extras:
        latent = int(linears[-1][0].shape[1])
        found["log_std_net"] = (_float_tensor(path, extras, "log_std_net.weight", (act_dim, latent), "policy_extras"),
                                _float_tensor(path, extras, "log_std_net.bias", (act_dim,), "policy_extras"))
    return found


def _mean_net_layers(path: Path, policy: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (W, b) float64 pairs of the action-mean network, hidden layers then the head, each layer's input the
    previous one's output."""
    # nn.Sequential numbering: Linear at 0, 2, 4, ... (ReLUs in between)
    n_linear = len([k for k in policy if isinstance(k, str) and k.startswith("mean_net.") and k.endswith(".weight")])
    if n_linear < 2:
        raise _damaged(path, f"its policy holds {'no layers' if n_linear == 0 else 'only an output layer'}")
    linears = []
    for i in range(n_linear):
        weight = _float_tensor(path, policy, f"mean_net.{2 * i}.weight", None, "policy")
        inputs = int(linears[-1][0].shape[0]) if linears else None  # the previous layer's outputs
        if weight.dim() != 2 or min(weight.shape) < 1 or (inputs is not None and weight.shape[1] != inputs):
            takes = f"the previous layer's {inputs} outputs" if inputs is not None else "an observation"
            raise _damaged(path, f"policy mean_net.{2 * i}.weight has shape {tuple(weight.shape)}, which does not "
                                 f"take {takes}")
        bias = _float_tensor(path, policy, f"mean_net.{2 * i}.bias", (int(weight.shape[0]),), "policy")
        linears.append((weight, bias))
    return linears


def _float_tensor(path: Path, mapping: dict, key: str, shape: tuple[int, ...] | None, where: str) -> torch.Tensor:
    """mapping[key] as a float64 tensor, checked to be a floating-point tensor (of `shape`, unless None)."""
    if key not in mapping:
        raise _damaged(path, f"its {where} has no {key}")
    value = mapping[key]
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise _damaged(path, f"{where} {key} is {_what(value)}, not a float tensor")
    if shape is not None and tuple(value.shape) != shape:
        raise _damaged(path, f"{where} {key} has shape {tuple(value.shape)}, not {shape}")
    return value.double()


def load_checkpoint(path: Path | str) -> LoadedPolicy:
    """Load a checkpoint's policy (hidden layers, head, log-std, normalization) safely."""
    return policy_from_state(Path(path), read_checkpoint(path))


def imported_checkpoint_payload(policy: LoadedPolicy, *, iteration: int, config: dict,
                                eval_return: float | None = None) -> dict:
    """A checkpoint payload (for save_checkpoint) holding only a policy read from elsewhere (an SB3 file): float64
    layers as mean_net.{0,2,...}, log-std, normalization statistics with their clip_obs and epsilon, and the
    squash / action bounds / SAC log-std net as `policy_extras`. It has no value net or training state, so it
    can be evaluated and drawn, not resumed."""
    state = {f"mean_net.{2 * i}.{part}": t.detach().double().clone()
             for i, layer in enumerate(policy.layers) for part, t in zip(("weight", "bias"), layer)}
    state["log_std"] = policy.log_std.detach().double().clone()
    normalizer = {"mode": "frozen" if policy.obs_norm_enabled else "off",
                  "obs_mean": torch.from_numpy(np.asarray(policy.obs_mean, np.float64).copy()),
                  "obs_var": torch.from_numpy(np.asarray(policy.obs_var, np.float64).copy()),
                  "clip_obs": float(policy.clip_obs), "epsilon": float(policy.epsilon)}
    return {"iteration": int(iteration), "timesteps": int(policy.timesteps), "config": dict(config),
            "policy": state, "normalizer": normalizer, "policy_extras": policy.extras_state(),
            "eval_return": eval_return}
