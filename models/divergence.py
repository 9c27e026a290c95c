"""Non-finite training is a failure: the exception a diverged PPO update raises, and the checks that raise it.

Once one number of an update is NaN or infinite, every later policy is too: clip_grad_norm scales a NaN gradient
by a NaN factor, and Adam spreads it into every weight. A run that kept going would write NaN checkpoints and
report a best return from before the divergence as if all were well. So each update path checks what it can see
cheaply and exactly (the loss and the gradient norm it already computes, per minibatch step where that costs no
device sync), and every update ends with a check of all weights; the first non-finite value stops the run.

Statistics that are legitimately undefined (the explained variance of a one-sample rollout) are not divergence:
they are reported as NaN and never checked here.
"""
from __future__ import annotations

import math
import sys

import torch

from models.networks import GaussianPolicy, ValueNet
from utils.errors import RunFailed

# Beyond this |log-std| the Gaussian's variance exp(2 log_std) or precision exp(-2 log_std) overflows float64
# (about 354.9): the next rollout's noise or log-probabilities would be infinite, so such a policy is diverged too.
MAX_ABS_LOG_STD = math.log(sys.float_info.max) / 2


class TrainingDiverged(RunFailed):
    """A PPO update produced a non-finite loss, gradient or weight; `what` says which, `iteration` (when known)
    is the iteration whose update diverged (1 for the first update)."""

    def __init__(self, what: str, iteration: int | None = None, advice: str | None = None):
        self.what, self.iteration, self.advice = what, iteration, advice
        where = "" if iteration is None else f" at iteration {iteration}"
        super().__init__(f"training diverged{where} ({what})" + (f"; {advice}" if advice else ""))

    def at_iteration(self, iteration: int) -> "TrainingDiverged":
        """The same divergence, told with the iteration the caller knows it happened in."""
        return TrainingDiverged(self.what, iteration, self.advice)

    def with_advice(self, advice: str) -> "TrainingDiverged":
        """The same divergence with what the user can do about it (said by the caller, who knows the run store
        and the flags; this layer knows neither)."""
        return TrainingDiverged(self.what, self.iteration, advice)


def check_finite_step(loss: float, grad_norm: float, step: int | None = None) -> None:
    """Raise TrainingDiverged if a minibatch step's loss or gradient norm (before clipping) is not finite.

    `step` counts the update's minibatch steps from 1; None when the values are totals over the whole update
    (the torch path sums them on the device and looks once, so it cannot say which step)."""
    where = "during the update" if step is None else f"at minibatch step {step} of the update"
    if not math.isfinite(loss):
        raise TrainingDiverged(f"non-finite loss {where}")
    if not math.isfinite(grad_norm):
        raise TrainingDiverged(f"non-finite gradient {where}")


def check_finite_weights(policy: GaussianPolicy, value_net: ValueNet) -> None:
    """Raise TrainingDiverged naming the first non-finite part of the networks after an update: policy weights,
    log-std (or a variance that overflows float64), value weights. The parameters are checked as stored, so a
    float64 result that overflowed the parameters' dtype (float32) counts as infinite."""
    parts = [("policy weights", list(policy.mean_net.parameters())), ("policy log-std", [policy.log_std]),
             ("value weights", list(value_net.parameters()))]
    with torch.no_grad():
        for name, params in parts:
            if not all(bool(torch.isfinite(p).all()) for p in params):
                raise TrainingDiverged(f"non-finite {name} after the update")
        if not bool((policy.log_std.abs() < MAX_ABS_LOG_STD).all()):
            raise TrainingDiverged(f"policy log-std beyond ±{MAX_ABS_LOG_STD:.0f} after the update, where its "
                                   f"variance overflows float64")
