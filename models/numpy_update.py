"""PPO's minibatch update in numpy: the math of the torch path in `models.ppo`, without torch's per-op overhead.

For the tiny MLPs of this project (tens of neurons) one autograd + Adam step costs 2-4 ms on a small CPU, almost
all of it per-op dispatch; the same arithmetic as ~100 numpy calls costs about a fifth of that (c16,16 policy,
c32,32 value, 64 samples, 2-core machine). Everything here is float64:
at these sizes numpy's cost is per call, not per flop, so float64 is as fast as float32 and makes this path
closer to exact arithmetic than the float32 torch path (the tests compare it with torch run in float64).

The torch modules and the torch optimizer stay the owners of the state. Each update reads the parameters and
Adam's state ({'step', 'exp_avg', 'exp_avg_sq'} per parameter, torch's own format) into one flat float64
vector each, runs every minibatch step on those, and writes the results back (cast to the parameters' dtype),
so checkpoints are ordinary torch state dicts and a run can resume with either path.

Shapes: N = samples in the rollout (T x n), B = minibatch size, d = obs dim, a = action dim, P = parameter count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.advantages import AdvantageTargets, update_stats
from models.divergence import check_finite_step, check_finite_weights
from models.mlp import numpy_mlp
from models.networks import LOG_2PI, GaussianPolicy, ValueNet, linear_layers
from models.rollout import PPOConfig, Rollout

STAT_KEYS = ("loss", "pg_loss", "vf_loss", "entropy_loss", "approx_kl", "clip_fraction")


def supports_numpy_update(policy: GaussianPolicy, value_net: ValueNet, optimizer: torch.optim.Optimizer) -> bool:
    """Whether the numpy path computes what the torch path would: plain Adam over exactly these nets' CPU params."""
    if type(optimizer) is not torch.optim.Adam:
        return False
    if linear_layers(policy.mean_net) is None or linear_layers(value_net.net) is None:
        return False
    params = [p for group in optimizer.param_groups for p in group["params"]]
    own = list(policy.parameters()) + list(value_net.parameters())
    if len(params) != len(own) or {id(p) for p in params} != {id(p) for p in own}:
        return False
    if any(p.device.type != "cpu" or p.is_complex() for p in params):
        return False
    for group in optimizer.param_groups:
        if group.get("weight_decay", 0) != 0 or any(group.get(k) for k in
                                                      ("amsgrad", "maximize", "capturable", "differentiable", "fused")):
            return False
    # Adam keeps one step count per parameter; the flat path needs them equal (all fresh or all at the same step).
    states = [optimizer.state.get(p, {}) for p in params]
    if any(states) and not all(states):
        return False
    return len({float(s["step"]) for s in states if s}) <= 1


class FlatParams:
    """All optimizer parameters as views into one float64 vector, with a gradient vector of the same layout.

    The layout follows the optimizer's parameter order, so each param group is one contiguous slice.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.tensors = [p for group in optimizer.param_groups for p in group["params"]]
        sizes = [p.numel() for p in self.tensors]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.values = np.concatenate([p.detach().cpu().double().numpy().reshape(-1) for p in self.tensors])
        self.grad = np.zeros_like(self.values)
        self.group_slices = []
        start = 0
        for group in optimizer.param_groups:
            stop = start + sum(p.numel() for p in group["params"])
            self.group_slices.append(slice(start, stop))
            start = stop
        self._index = {id(p): k for k, p in enumerate(self.tensors)}

    def _view(self, flat: np.ndarray, tensor: torch.Tensor) -> np.ndarray:
        k = self._index[id(tensor)]
        return flat[self.offsets[k]:self.offsets[k + 1]].reshape(tuple(tensor.shape))

    def value(self, tensor: torch.Tensor) -> np.ndarray:
        """The float64 view holding `tensor`'s current value."""
        return self._view(self.values, tensor)

    def gradient(self, tensor: torch.Tensor) -> np.ndarray:
        """The float64 view receiving `tensor`'s gradient."""
        return self._view(self.grad, tensor)

    def unflatten(self, flat: np.ndarray) -> list[np.ndarray]:
        """`flat` (P,) split into one array per parameter, shaped like it."""
        return [flat[self.offsets[k]:self.offsets[k + 1]].reshape(tuple(p.shape)) for k, p in enumerate(self.tensors)]

    def write_back(self) -> None:
        """Copy the values into the torch parameters (cast to their dtype)."""
        with torch.no_grad():
            for p, value in zip(self.tensors, self.unflatten(self.values)):
                p.copy_(torch.from_numpy(value))


class NumpyMLP:
    """A ReLU MLP (Linear, ReLU, ..., Linear) whose weights and gradients are views into a FlatParams."""

    def __init__(self, flat: FlatParams, layers: list[nn.Linear]):
        self.layers = [(flat.value(m.weight), flat.value(m.bias)) for m in layers]  # (out, in), (out,) each
        self.grad_weights = [flat.gradient(m.weight) for m in layers]
        self.grad_biases = [flat.gradient(m.bias) for m in layers]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Output (B, out) and the input of every layer (x, then each post-ReLU hidden activation)."""
        return numpy_mlp(self.layers, x, return_inputs=True)

    def backward(self, inputs: list[np.ndarray], d_out: np.ndarray) -> None:
        """Write d loss / d (W, b) of every layer into the gradient views, given d loss / d output (B, out)."""
        d = d_out
        for k in reversed(range(len(self.layers))):
            np.matmul(d.T, inputs[k], out=self.grad_weights[k])
            np.sum(d, axis=0, out=self.grad_biases[k])
            if k > 0:
                # ReLU passes the gradient where its output is positive (torch's threshold_backward).
                d = (d @ self.layers[k][0]) * (inputs[k] > 0)


def gaussian_log_prob(mean: np.ndarray, log_std: np.ndarray, actions: np.ndarray, *,
                      return_terms: bool = False) -> np.ndarray | tuple[np.ndarray, ...]:
    """Log-density (B,) of `actions` (B, a) under N(mean, exp(log_std)^2), summed over action dims, in nats; with
    `return_terms` also what its gradients are made of: actions - mean (B, a), its square (B, a) and 1 / var (a,).

    The numpy twin of GaussianPolicy.log_prob_and_entropy (the torch path's)."""
    diff = actions - mean
    sq_diff = diff * diff
    inv_var = np.exp(-2 * log_std)
    log_prob = -0.5 * (sq_diff @ inv_var) - (log_std.sum() + 0.5 * LOG_2PI * log_std.size)
    return (log_prob, diff, sq_diff, inv_var) if return_terms else log_prob


def normalized_per_minibatch(advantages: np.ndarray, batch_size: int) -> np.ndarray:
    """(N,) advantages standardized within each consecutive minibatch of `batch_size` (the last may be shorter).

    As torch does per minibatch: (A - mean) / (std + 1e-8) with Bessel's correction; a one-sample minibatch is
    left as it is. Done for a whole epoch at once because advantages do not depend on the parameters.
    """
    n_full = len(advantages) // batch_size * batch_size
    out = np.array(advantages, np.float64)
    blocks = [out[:n_full].reshape(-1, batch_size), out[n_full:].reshape(1, -1)]
    for block in blocks:
        if block.shape[1] > 1:
            block -= block.mean(axis=1, keepdims=True)
            block /= block.std(axis=1, ddof=1, keepdims=True) + 1e-8
    return out


def minibatch_gradients(policy: NumpyMLP, log_std: np.ndarray, grad_log_std: np.ndarray, value: NumpyMLP,
                        obs: np.ndarray, actions: np.ndarray, old_log_prob: np.ndarray, advantages: np.ndarray,
                        returns: np.ndarray, cfg: PPOConfig) -> tuple[float, ...]:
    """Gradient of PPO's loss on one minibatch into the flat gradient vector; returns the STAT_KEYS values.

    obs (B, d), actions (B, a), old_log_prob / advantages / returns (B,), advantages already normalized
    (normalized_per_minibatch). The loss is
    -mean(min(A r, A clip(r, 1-eps, 1+eps))) + ent_coef * (-mean entropy) + vf_coef * mean((V - R)^2),
    with r = exp(log_prob - old_log_prob).
    """
    B = obs.shape[0]
    mean, policy_inputs = policy.forward(obs)                            # (B, a)
    log_prob, diff, sq_diff, inv_var = gaussian_log_prob(mean, log_std, actions, return_terms=True)
    log_ratio = log_prob - old_log_prob
    ratio = np.exp(log_ratio)
    clipped_ratio = ratio.clip(1 - cfg.clip_range, 1 + cfg.clip_range)
    unclipped, clipped = advantages * ratio, advantages * clipped_ratio
    values, value_inputs = value.forward(obs)                            # (B, 1)
    value_error = values[:, 0] - returns                                 # (B,)

    pg_loss = -float(np.minimum(unclipped, clipped).sum()) / B
    vf_loss = float(value_error @ value_error) / B
    entropy_loss = -float((0.5 + 0.5 * LOG_2PI + log_std).sum())         # entropy is the same for every sample
    loss = pg_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * vf_loss
    approx_kl = float(((ratio - 1) - log_ratio).sum()) / B
    clip_fraction = np.count_nonzero(np.abs(ratio - 1) > cfg.clip_range) / B

    # d min(u, c) / d ratio routed as torch does: a tie sends half the gradient to each side, and the clipped
    # side passes it only where clamp did not clip. Inside the range u and c tie and both halves pass.
    through = np.where(clipped_ratio == ratio, 1.0, (unclipped < clipped) + 0.5 * (unclipped == clipped))
    d_log_prob = (-1.0 / B) * advantages * through * ratio               # (B,) d loss / d log_prob
    policy.backward(policy_inputs, d_log_prob[:, None] * diff * inv_var)   # d log_prob / d mean = diff / var
    grad_log_std[:] = d_log_prob @ (sq_diff * inv_var - 1.0) - cfg.ent_coef
    value.backward(value_inputs, (cfg.vf_coef * 2.0 / B) * value_error[:, None])
    return loss, pg_loss, vf_loss, entropy_loss, approx_kl, clip_fraction


def clip_grad_norm(grad: np.ndarray, max_norm: float) -> float:
    """Scale `grad` in place as torch.nn.utils.clip_grad_norm_ does; returns the norm before clipping."""
    total_norm = float(np.sqrt(grad @ grad))
    grad *= min(max_norm / (total_norm + 1e-6), 1.0)
    return total_norm


def adam_step(params: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, step: float,
              lr: float, betas: tuple[float, float], eps: float) -> None:
    """One torch.optim.Adam step (no weight decay, no amsgrad) in place; `step` counts this step (1 first).

    The operations mirror torch's single-tensor Adam, bias correction included.
    """
    beta1, beta2 = betas
    exp_avg += (1 - beta1) * (grad - exp_avg)                            # exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    step_size = lr / (1 - beta1 ** step)
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    params -= step_size * exp_avg / (np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps)


@dataclass
class AdamState:
    """Adam's moments for the flat parameter vector and the (shared) step count."""

    step: float
    exp_avg: np.ndarray       # (P,)
    exp_avg_sq: np.ndarray    # (P,)

    @classmethod
    def read(cls, optimizer: torch.optim.Optimizer, flat: FlatParams) -> "AdamState":
        """The optimizer's state for flat's parameters (zeros at step 0 when the optimizer has not stepped yet)."""
        states = [optimizer.state.get(p, {}) for p in flat.tensors]
        if not all(states):
            return cls(0.0, np.zeros_like(flat.values), np.zeros_like(flat.values))
        moment = lambda key: np.concatenate([s[key].detach().cpu().double().numpy().reshape(-1)  # noqa: E731
                                             for s in states])
        return cls(float(states[0]["step"]), moment("exp_avg"), moment("exp_avg_sq"))

    def step_all(self, optimizer: torch.optim.Optimizer, flat: FlatParams) -> None:
        """Advance the step count and Adam-update every param group's slice of flat.values with flat.grad."""
        self.step += 1.0
        for group, sl in zip(optimizer.param_groups, flat.group_slices):
            adam_step(flat.values[sl], flat.grad[sl], self.exp_avg[sl], self.exp_avg_sq[sl], self.step,
                      float(group["lr"]), tuple(group["betas"]), float(group["eps"]))

    def write(self, optimizer: torch.optim.Optimizer, flat: FlatParams) -> None:
        """Store the state back into the optimizer in torch's format (in place where it already exists)."""
        if self.step == 0:
            return
        scalar_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        with torch.no_grad():
            for p, m, v in zip(flat.tensors, flat.unflatten(self.exp_avg), flat.unflatten(self.exp_avg_sq)):
                state = optimizer.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=scalar_dtype)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"].fill_(self.step)
                state["exp_avg"].copy_(torch.from_numpy(m))
                state["exp_avg_sq"].copy_(torch.from_numpy(v))


def ppo_update_numpy(policy: GaussianPolicy, value_net: ValueNet, optimizer: torch.optim.Optimizer,
                     rollout: Rollout, targets: AdvantageTargets, rng: np.random.Generator,
                     cfg: PPOConfig) -> dict[str, float]:
    """n_epochs of minibatch clipped-PPO updates on one rollout in float64 numpy; same stats as ppo_update.

    Needs supports_numpy_update(policy, value_net, optimizer). Consumes `rng` exactly as the torch path
    (one permutation of the N samples per epoch) and visits the same minibatches, the last one possibly partial.
    Raises models.divergence.TrainingDiverged at the first minibatch step whose loss or gradient is not finite
    (before Adam applies it; the torch modules and optimizer are then left as they were), or if a weight is not
    finite after the update.
    """
    T, n, d = rollout.obs.shape
    N = T * n
    flat = FlatParams(optimizer)
    adam = AdamState.read(optimizer, flat)
    policy_mlp = NumpyMLP(flat, linear_layers(policy.mean_net))
    value_mlp = NumpyMLP(flat, linear_layers(value_net.net))
    log_std, grad_log_std = flat.value(policy.log_std), flat.gradient(policy.log_std)

    obs = np.asarray(rollout.obs, np.float64).reshape(N, d)
    actions = np.asarray(rollout.actions, np.float64).reshape(N, -1)
    totals = np.zeros(len(STAT_KEYS))
    n_batches = 0
    # Overflow and NaN are caught by the explicit checks below and end the run with one line; numpy's own
    # floating-point warnings would only print noise before it.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        old_log_prob = gaussian_log_prob(policy_mlp.forward(obs)[0], log_std, actions)
        for _ in range(cfg.n_epochs):
            order = rng.permutation(N)
            # Gather once per epoch so every minibatch below is a contiguous slice.
            epoch = [x[order] for x in (obs, actions, old_log_prob, targets.advantages, targets.returns)]
            if cfg.normalize_advantage:
                epoch[3] = normalized_per_minibatch(epoch[3], cfg.batch_size)
            for start in range(0, N, cfg.batch_size):
                batch = [x[start:start + cfg.batch_size] for x in epoch]
                step_stats = minibatch_gradients(policy_mlp, log_std, grad_log_std, value_mlp, *batch, cfg)
                grad_norm = clip_grad_norm(flat.grad, cfg.max_grad_norm)
                n_batches += 1
                # Before Adam: a NaN gradient stays NaN through clipping and would reach every weight.
                check_finite_step(step_stats[0], grad_norm, n_batches)
                totals += step_stats
                adam.step_all(optimizer, flat)
    flat.write_back()
    adam.write(optimizer, flat)
    check_finite_weights(policy, value_net)
    return update_stats({key: float(total / n_batches) for key, total in zip(STAT_KEYS, totals)}, targets, log_std)
