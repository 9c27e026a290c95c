"""The forward pass of a ReLU MLP given as (W, b) layers, in numpy and in torch, and the extraction of those layers.

A network here is its list of (W (out, in), b (out,)) pairs, applied as relu(W x + b) for every layer but the
last, which is linear (the head). The numpy pass is what rollouts, evaluation and the numpy PPO update run:
float64 on the host, since for these tiny nets a numpy call costs a fraction of a torch call. The torch pass is
for layers that already live in torch (a loaded checkpoint's float64 tensors). Inputs are (N, in) rows.

Many networks of one shape at once (`stack_layers`, `stacked_numpy_mlp`): row k of the batch goes through network
k. Each row is its own vector-matrix product, so its result is bit-identical to `numpy_mlp(network k, x[k:k+1])`
whatever else is in the batch. One (N, in) @ W.T product over shared weights is not: BLAS's matrix-matrix kernel
rounds differently from the vector-matrix kernel a single row takes, so a row's actions would depend on its batch.
"""
from __future__ import annotations

from typing import Literal, Sequence, overload

import numpy as np
import torch
from torch import Tensor, nn

NumpyLayers = Sequence[tuple[np.ndarray, np.ndarray]]
StackedLayers = list[tuple[np.ndarray, np.ndarray]]  # per layer: W (B, out, in), b (B, out) of B networks
TorchLayers = Sequence[tuple[Tensor, Tensor]]


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


@overload
def numpy_mlp(layers: NumpyLayers, x: np.ndarray, *, return_inputs: Literal[False] = ...) -> np.ndarray: ...


@overload
def numpy_mlp(layers: NumpyLayers, x: np.ndarray, *,
              return_inputs: Literal[True]) -> tuple[np.ndarray, list[np.ndarray]]: ...


def numpy_mlp(layers: NumpyLayers, x: np.ndarray, *, return_inputs: bool = False):
    """The network's output (N, out) at inputs x (N, in); with `return_inputs` also every layer's input (x, then
    each post-ReLU hidden activation), which backpropagation needs."""
    inputs = [x]
    for W, b in layers[:-1]:
        x = np.maximum(x @ W.T + b, 0.0)
        inputs.append(x)
    W, b = layers[-1]
    out = x @ W.T + b
    return (out, inputs) if return_inputs else out


def torch_mlp(layers: TorchLayers, x: Tensor) -> Tensor:
    """The network's output (N, out) at inputs x (N, in), in the layers' dtype and device."""
    for W, b in layers[:-1]:
        x = torch.relu(x @ W.T + b)
    W, b = layers[-1]
    return x @ W.T + b


def stack_layers(networks: Sequence[NumpyLayers]) -> StackedLayers:
    """The layers of B networks of one shape stacked per layer: [(W (B, out, in), b (B, out)), ...], head last.
    A network may appear several times (e.g. one row per episode of the same policy)."""
    return [(np.stack([net[i][0] for net in networks]), np.stack([net[i][1] for net in networks]))
            for i in range(len(networks[0]))]


def stacked_numpy_mlp(layers: StackedLayers, x: np.ndarray) -> np.ndarray:
    """Output (B, out): row k is network k of the stack at x[k] (x (B, in)), bit-identical to
    numpy_mlp(network k, x[k:k+1]) (see the module docstring)."""
    h = x[:, None, :]
    for W, b in layers[:-1]:
        # W.transpose is a view, as W.T is in numpy_mlp: a contiguous copy would take another BLAS path and round
        # differently
        h = np.maximum(h @ W.transpose(0, 2, 1) + b[:, None, :], 0.0)
    W, b = layers[-1]
    return (h @ W.transpose(0, 2, 1) + b[:, None, :])[:, 0, :]
