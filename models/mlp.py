"""The numpy forward pass of a ReLU MLP given as (W, b) layers, one network or many of one shape at once.

A network here is its list of (W (out, in), b (out,)) pairs, applied as relu(W x + b) for every layer but the
last, which is linear (the head). This pass is what rollouts, evaluation and the numpy PPO update run: float64 on
the host, since for these tiny nets a numpy call costs a fraction of a torch call. Inputs are (N, in) rows. The
torch side (layers taken out of torch modules, the torch forward pass) is in models/networks.py: this module
imports numpy only, so the evaluation worker (models/evaluation.py) starts without torch.

Many networks of one shape at once (`stack_layers`, `stacked_numpy_mlp`): row k of the batch goes through network
k. Each row is its own vector-matrix product, so its result is bit-identical to `numpy_mlp(network k, x[k:k+1])`
whatever else is in the batch. One (N, in) @ W.T product over shared weights is not: BLAS's matrix-matrix kernel
rounds differently from the vector-matrix kernel a single row takes, so a row's actions would depend on its batch.
"""
from __future__ import annotations

from typing import Literal, Sequence, overload

import numpy as np

NumpyLayers = Sequence[tuple[np.ndarray, np.ndarray]]
StackedLayers = list[tuple[np.ndarray, np.ndarray]]  # per layer: W (B, out, in), b (B, out) of B networks


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
