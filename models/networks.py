"""Policy and value networks: ReLU MLPs with linear heads, the parser for dims like `c16,16`, their layers as
(W, b) arrays (the form models/mlp.py runs) and the torch forward pass of such layers."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from utils.errors import UserError

LOG_2PI = math.log(2 * math.pi)
TorchLayers = Sequence[tuple[Tensor, Tensor]]


MAX_WIDTH = 65_536  # a wider layer does not fit in memory as a float64 matrix next to another one


def parse_dims(text: str, flag: str = "--policy_dims") -> tuple[int, ...]:
    """Hidden widths from `c16,16` or `16,16` (the leading `c` is the paper's notation), each 1..MAX_WIDTH."""
    raw = (text or "").strip()
    body = raw[1:] if raw[:1] in ("c", "C") else raw
    parts = [p.strip() for p in body.split(",")]
    # isdigit() alone admits digits int() refuses (superscripts): ASCII digits only
    if not body or any(not (p.isascii() and p.isdigit()) or not 1 <= int(p) <= MAX_WIDTH for p in parts):
        raise UserError(f"{flag}={text!r} is not a list of widths from 1 to {MAX_WIDTH}; write it like {flag}=c16,16 "
                        f"or {flag}=64,64")
    return tuple(int(p) for p in parts)


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, out_gain: float) -> nn.Sequential:
    """ReLU MLP with a linear output head, orthogonally initialised as Stable-Baselines3 does."""
    layers: list[nn.Module] = []
    prev = in_dim
    for width in hidden:
        linear = nn.Linear(prev, width)
        nn.init.orthogonal_(linear.weight, gain=math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()]
        prev = width
    head = nn.Linear(prev, out_dim)
    nn.init.orthogonal_(head.weight, gain=out_gain)
    nn.init.zeros_(head.bias)
    layers.append(head)
    return nn.Sequential(*layers)


class GaussianPolicy(nn.Module):
    """Diagonal Gaussian policy: mean = ReLU MLP of the normalized observation, state-independent log-std."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], log_std_init: float):
        super().__init__()
        self.mean_net = mlp(obs_dim, hidden, act_dim, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mean_net(obs)

    def log_prob_and_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of `actions` (summed over action dims) and the entropy, per sample."""
        mean = self.mean_net(obs)
        log_std = self.log_std.expand_as(mean)
        var = torch.exp(2 * log_std)
        log_prob = -((actions - mean) ** 2) / (2 * var) - log_std - 0.5 * LOG_2PI
        entropy = (0.5 + 0.5 * LOG_2PI + log_std).sum(-1)
        return log_prob.sum(-1), entropy


class ValueNet(nn.Module):
    """State-value function: a separate ReLU MLP with a linear scalar head."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim, hidden, 1, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


def linear_layers(net: nn.Sequential) -> list[nn.Linear] | None:
    """The Linear layers of a Linear, ReLU, ..., Linear stack, or None when `net` has any other form."""
    modules = list(net)
    expected = [nn.Linear if k % 2 == 0 else nn.ReLU for k in range(len(modules))]
    if len(modules) % 2 == 0 or any(type(m) is not t for m, t in zip(modules, expected)):
        return None
    return modules[0::2]


def numpy_layers(net: nn.Sequential | TorchLayers) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every layer's (W, b), head last, as float64 host numpy arrays: from a Linear, ReLU, ..., Linear stack
    (GaussianPolicy.mean_net, ValueNet.net; copies) or from (W, b) tensor pairs (LoadedPolicy.layers)."""
    if isinstance(net, nn.Sequential):
        linears = linear_layers(net)
        if linears is None:
            raise ValueError("expected a Linear, ReLU, ..., Linear stack")
        net = [(m.weight, m.bias) for m in linears]
    return [(W.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()) for W, b in net]


def torch_mlp(layers: TorchLayers, x: Tensor) -> Tensor:
    """The network's output (N, out) at inputs x (N, in), in the layers' dtype and device."""
    for W, b in layers[:-1]:
        x = torch.relu(x @ W.T + b)
    W, b = layers[-1]
    return x @ W.T + b
