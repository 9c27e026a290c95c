"""Per-checkpoint linear-region metrics (docs/design.md, "Metrics"), with the paper code's metric names.

Every input is a raw state array; each checkpoint maps it to its own input space with `policy.normalize`
(x_i = normalize(s_i)), and counting happens there with the exact 1-D region core (utils.geometry.regions).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from models.checkpoint import LoadedPolicy
from utils.geometry.regions import count_path, line_regions, lines_through

TRAJECTORY_TYPES = ("fixed", "current")
RANDOM_TRAJECTORY_QUANTITIES = ("num_regions", "num_transitions", "normalized_num_regions",
                                "normalized_num_transitions", "trajectory_length")


def path_length(points: np.ndarray) -> float:
    """Sum of the Euclidean lengths of the segments [p_i, p_{i+1}] (in the points' own units)."""
    if len(points) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def trajectory_metric_names(policy_type: str, trajectory_type: str) -> list[str]:
    """Column names of `trajectory_metrics` for one (policy type, trajectory type)."""
    p, t = policy_type, trajectory_type
    return [f"num_transitions_{p}_{t}", f"num_regions_{p}_{t}", f"{p}_{t}_trajectory_timesteps",
            f"{p}_{t}_trajectory_length", f"{p}_{t}_trajectory_length_normalized",
            f"{p}_{t}_normalized_density", f"{p}_{t}_transitions_per_length"]


def _counts(policy: LoadedPolicy, x: np.ndarray, device: str) -> tuple[int, int]:
    """(num_transitions, num_regions) along the polyline through input-space points x (T, d)."""
    if len(x) < 2:  # a one-state episode: one region, no segment to cross
        return 0, 1
    counts = count_path(policy.hidden_layers, x, device=device)
    return int(counts.num_transitions), int(counts.num_regions)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def trajectory_metrics(policy: LoadedPolicy, states: np.ndarray, policy_type: str, trajectory_type: str, *,
                       device: str = "cpu") -> dict[str, float]:
    """Transitions, regions, lengths (raw and input space) and densities of `policy` along one raw-state trajectory."""
    p, t = policy_type, trajectory_type
    x = policy.normalize(states)
    transitions, regions = _counts(policy, x, device)
    length_norm = path_length(x)
    return {
        f"num_transitions_{p}_{t}": transitions,
        f"num_regions_{p}_{t}": regions,
        f"{p}_{t}_trajectory_timesteps": int(len(states)),
        f"{p}_{t}_trajectory_length": path_length(states),
        f"{p}_{t}_trajectory_length_normalized": length_norm,
        f"{p}_{t}_normalized_density": _ratio(transitions, length_norm * policy.n_neurons),
        f"{p}_{t}_transitions_per_length": _ratio(transitions, length_norm),
    }


def random_trajectory_metric_names() -> list[str]:
    return [f"{stat}_{q}_random_trajectories" for q in RANDOM_TRAJECTORY_QUANTITIES for stat in ("mean", "std")]


def random_trajectory_metrics(policy: LoadedPolicy, trajectories: Sequence[np.ndarray], *,
                              device: str = "cpu") -> dict[str, float]:
    """Mean and std over random-action trajectories of regions, transitions, both per input-space length, and length.

    Lengths are input-space lengths (sum ||x_{i+1} - x_i||), the space the counts live in.
    """
    per = {q: [] for q in RANDOM_TRAJECTORY_QUANTITIES}
    for states in trajectories:
        x = policy.normalize(states)
        transitions, regions = _counts(policy, x, device)
        length = path_length(x)
        per["num_regions"].append(regions)
        per["num_transitions"].append(transitions)
        per["normalized_num_regions"].append(_ratio(regions, length))
        per["normalized_num_transitions"].append(_ratio(transitions, length))
        per["trajectory_length"].append(length)
    out = {}
    for q, values in per.items():
        out[f"mean_{q}_random_trajectories"] = float(np.mean(values))
        out[f"std_{q}_random_trajectories"] = float(np.std(values))
    return out


def random_line_metric_names() -> list[str]:
    return [f"{stat}_num_regions_random_lines_{anchor}" for anchor in ("origin", "mean") for stat in ("mean", "std")]


def random_line_metrics(policy: LoadedPolicy, points: np.ndarray, *, device: str = "cpu") -> dict[str, float]:
    """Mean and std of the regions crossed by whole lines through each sampled state and the origin / the mean state.

    Both the points and the anchors live in this checkpoint's input space: origin = 0 there, mean = the mean of
    the normalized sampled states. A line whose point equals its anchor has no direction and is skipped.
    """
    x = policy.normalize(points)
    out = {}
    for anchor_name, anchor in (("origin", np.zeros(x.shape[1])), ("mean", x.mean(axis=0))):
        keep = np.linalg.norm(x - anchor, axis=1) > 0
        if not keep.any():
            out[f"mean_num_regions_random_lines_{anchor_name}"] = 1.0
            out[f"std_num_regions_random_lines_{anchor_name}"] = 0.0
            continue
        p, u = lines_through(x[keep], anchor, device=device)
        counts = line_regions(policy.hidden_layers, p, u, device=device).num_regions.double().cpu().numpy()
        out[f"mean_num_regions_random_lines_{anchor_name}"] = float(counts.mean())
        out[f"std_num_regions_random_lines_{anchor_name}"] = float(counts.std())
    return out


def architecture_summary(policy: LoadedPolicy) -> dict[str, int]:
    """depth (hidden layers), width (widest), n (hidden neurons), n_params (policy weights and biases, head included)."""
    return {"depth": len(policy.widths), "width": max(policy.widths), "n": policy.n_neurons,
            "n_params": policy.n_params}
