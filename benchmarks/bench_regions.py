"""Time the vectorized region analysis (utils.geometry.regions, utils.geometry.planes) against the simple loop implementation.

Data: one 1,000-state HalfCheetah-v5 episode under uniform random actions (seed 0), standardized by its own
mean and std (17 inputs). Nets c16,16 / c32,32 / c64,64 with 6 outputs: weights He-initialized
(N(0, 2 / fan_in), as torch.nn.init.kaiming_normal_), biases N(0, 0.1^2) -- small but nonzero, as after some
training, so first-layer hyperplanes do not all pass through the origin (the states' mean).
(a) 1-D: pieces along the 999 segments of the trajectory. (b) 2-D: partition of the plane through states 100,
500 and 900 (domain: square 1.25 x the circumcircle). The vectorized code's time is the best of 3 runs after a
warm-up; the loop implementation runs once. Last line: JSON with speedups and whether all counts agree.

Run: .venv/bin/python benchmarks/bench_regions.py
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.reference_regions import path_pieces_ref, plane_partition_ref  # noqa: E402
from utils.geometry.planes import plane_partition, plane_through_states  # noqa: E402
from utils.geometry.regions import path_pieces  # noqa: E402
from utils.settings import PLANE_SCALE  # noqa: E402

NETS = [(16, 16), (32, 32), (64, 64)]
NUM_STATES = 1000
BIAS_STD = 0.1
ACT_DIM = 6


def halfcheetah_states(num_states: int, seed: int = 0) -> np.ndarray:
    import gymnasium as gym

    env = gym.make("HalfCheetah-v5")
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    states = [obs]
    while len(states) < num_states:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
        states.append(obs)
    env.close()
    x = np.asarray(states, dtype=np.float64)
    return (x - x.mean(0)) / (x.std(0) + 1e-8)


def he_net(widths: tuple[int, ...], in_dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    layers, prev = [], in_dim
    for w in widths:
        W = torch.randn(w, prev, generator=g, dtype=torch.float64) * (2.0 / prev) ** 0.5
        b = torch.randn(w, generator=g, dtype=torch.float64) * BIAS_STD
        layers.append((W, b))
        prev = w
    head = (torch.randn(ACT_DIM, prev, generator=g, dtype=torch.float64) * (2.0 / prev) ** 0.5,
            torch.zeros(ACT_DIM, dtype=torch.float64))
    return layers, head


def best_time(fn, repeats: int = 3):
    fn()  # warm-up
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    torch.set_num_threads(1)  # small tensors: one thread avoids scheduling overhead (docs/design.md, pitfalls)
    x = halfcheetah_states(NUM_STATES)
    plane = plane_through_states(x[100], x[500], x[900], scale=PLANE_SCALE)
    origin, basis, domain = plane.origin.numpy(), plane.basis.numpy(), plane.domain.numpy()
    summary: dict = {"speedup_1d": {}, "speedup_2d": {}}
    all_equal = True
    for i, widths in enumerate(NETS):
        name = "c" + ",".join(map(str, widths))
        layers, head = he_net(widths, x.shape[1], seed=i)
        layers_np = [(W.numpy(), b.numpy()) for W, b in layers]

        t_vec, vec = best_time(lambda: path_pieces(layers, x))
        t = time.perf_counter()
        ref = path_pieces_ref(layers_np, x)
        t_ref = time.perf_counter() - t
        counts_vec = (vec.num_transitions, vec.num_regions, vec.transitions_per_layer)
        counts_ref = (ref["num_transitions"], ref["num_regions"], ref["transitions_per_layer"])
        equal = counts_vec == counts_ref
        all_equal &= equal
        summary["speedup_1d"][name] = round(t_ref / t_vec, 1)
        print(f"{name} 1-D: transitions {counts_vec[0]} (loop {counts_ref[0]}), regions {counts_vec[1]} "
              f"(loop {counts_ref[1]}), per layer {counts_vec[2]} (loop {counts_ref[2]}); "
              f"vectorized {t_vec * 1e3:.1f} ms, loop {t_ref * 1e3:.0f} ms, x{t_ref / t_vec:.0f}")

        t_vec, part = best_time(lambda: plane_partition(layers, head, plane))
        t = time.perf_counter()
        ref2 = plane_partition_ref(layers_np, origin, basis, domain)
        t_ref = time.perf_counter() - t
        pats_vec = {bytes(p) for p in part.unpacked_patterns().numpy().astype(np.uint8)}
        pats_ref = {bytes(p.astype(np.uint8)) for p in ref2["patterns"]}
        equal = part.num_regions == ref2["num_regions"] and pats_vec == pats_ref
        all_equal &= equal
        summary["speedup_2d"][name] = round(t_ref / t_vec, 1)
        print(f"{name} 2-D: regions {part.num_regions} (loop {ref2['num_regions']}), same patterns {pats_vec == pats_ref}, "
              f"area error {abs(float(part.areas.sum()) - part.domain_area) / part.domain_area:.1e}; "
              f"vectorized {t_vec * 1e3:.1f} ms, loop {t_ref * 1e3:.0f} ms, x{t_ref / t_vec:.0f}")
    summary["counts_equal"] = bool(all_equal)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
