"""Time the vectorized region analysis (utils.geometry.regions, utils.geometry.planes) against the simple loop implementation.

Data: one 1,000-state HalfCheetah-v5 episode under uniform random actions (seed 0), standardized by its own
mean and std (17 inputs). Nets c16,16 / c32,32 / c64,64 with 6 outputs: weights He-initialized
(N(0, 2 / fan_in), as torch.nn.init.kaiming_normal_), biases N(0, 0.1^2) -- small but nonzero, as after some
training, so first-layer hyperplanes do not all pass through the origin (the states' mean).
(a) 1-D: pieces along the 999 segments of the trajectory. (b) 2-D: partition of the plane through states 100,
500 and 900 (domain: square 1.25 x the circumcircle). The vectorized 1-D code's time is the best of 3 runs after a
warm-up, the 2-D kernel's the best of 5 samples of calls in a row (>= 50 ms each) after a warm-up; the loop
implementation runs once. Last line: JSON with speedups and whether all counts agree.
(c) Wide 2-D rows: nets c128,128 and c256,256 (same initialization) on the plane through states 100, 500 and 900
of a 1,000-state standardized random walk in 17 dimensions (seed 0): absolute times, and the ratio to the code of
the baseline commit BASELINE (git archive of utils/, run in a subprocess in the same run), whose region count and
pattern set must be the same. (d) Busy: the 2-D timings again with a CPU-bound process running beside the
benchmark; ratio busy / quiet per net (the kernel is single-threaded, so this should stay near 1 when a core is
free for it).

Run: .venv/bin/python benchmarks/bench_regions.py [--no-baseline] [--no-busy]
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.reference_regions import path_pieces_ref, plane_partition_ref  # noqa: E402
from utils.geometry.planes import plane_partition, plane_through_states  # noqa: E402
from utils.geometry.regions import path_pieces  # noqa: E402
from utils.settings import PLANE_SCALE  # noqa: E402

NETS = [(16, 16), (32, 32), (64, 64)]
WIDE_NETS = [(128, 128), (256, 256)]
BASELINE = "8b06d6e"  # the commit before issue 15's kernels
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def best_time_per_call(fn, min_seconds: float = 0.05, repeats: int = 5):
    """Best time of one call over ``repeats`` samples, each long enough (>= min_seconds, calls in a row) that a
    sub-millisecond call is not timed by a single clock reading; after a warm-up call. Returns (seconds, result)."""
    out = fn()
    t = time.perf_counter()
    fn()
    calls = max(1, int(min_seconds / max(time.perf_counter() - t, 1e-6)))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best, out


def random_walk(num_states: int, dim: int = 17, seed: int = 0) -> np.ndarray:
    """A standardized Gaussian random walk (num_states, dim)."""
    x = np.cumsum(np.random.default_rng(seed).normal(size=(num_states, dim)), 0)
    return (x - x.mean(0)) / x.std(0)


def pattern_digest(patterns: np.ndarray) -> str:
    """sha256 of the sorted distinct rows of packed patterns (R, W): equal digests, equal pattern sets."""
    return hashlib.sha256(np.unique(np.ascontiguousarray(patterns, dtype=np.int64), axis=0).tobytes()).hexdigest()


# Run in a subprocess against a copy of the baseline commit's utils/ (PYTHONPATH): times plane_partition on the nets
# in the npz given and prints one JSON line per net. (A shared helper for timing the baseline commit may replace this.)
_BASELINE_SCRIPT = """
import hashlib, json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from utils.geometry.planes import plane_partition
data = np.load(sys.argv[1])
for name in sys.argv[2:]:
    layers = [(data[f"{name}_W{i}"], data[f"{name}_b{i}"]) for i in range(int(data[f"{name}_depth"]))]
    head = (data[f"{name}_Wout"], data[f"{name}_bout"])
    plane = (data["origin"], data["basis"])
    times = []
    while len(times) < 2 or (sum(times) < 0.5 and len(times) < 50):
        t = time.perf_counter()
        part = plane_partition(layers, head, plane, data["domain"])
        times.append(time.perf_counter() - t)
    best = min(times)
    rows = np.unique(part.patterns.numpy(), axis=0)
    print(json.dumps({"net": name, "seconds": best, "num_regions": part.num_regions,
                      "digest": hashlib.sha256(rows.tobytes()).hexdigest()}), flush=True)
"""


def time_baseline(nets: dict, plane, commit: str = BASELINE) -> dict:
    """{net: {seconds, num_regions, digest}} of plane_partition at ``commit`` (best of at least 2 calls, more while
    they take under 0.5 s in all), in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", ROOT, "archive", commit, "utils"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        arrays = {"origin": plane.origin.numpy(), "basis": plane.basis.numpy(), "domain": plane.domain.numpy()}
        for name, (layers, head) in nets.items():
            arrays[f"{name}_depth"] = np.array(len(layers))
            for i, (W, b) in enumerate(layers):
                arrays[f"{name}_W{i}"], arrays[f"{name}_b{i}"] = W.numpy(), b.numpy()
            arrays[f"{name}_Wout"], arrays[f"{name}_bout"] = head[0].numpy(), head[1].numpy()
        np.savez(os.path.join(tmp, "nets.npz"), **arrays)
        out = subprocess.run([sys.executable, "-c", _BASELINE_SCRIPT, os.path.join(tmp, "nets.npz"), *nets],
                             check=True, capture_output=True, text=True, cwd=tmp, env={**os.environ, "PYTHONPATH": tmp})
    return {row["net"]: row for row in map(json.loads, out.stdout.splitlines())}


def against_baseline(summary: dict, small_2d: dict, quiet_2d: dict, plane) -> bool:
    """The 2-D rows (b) against the baseline commit: ratio of times, and the same counts and pattern sets."""
    old = time_baseline({name: (layers, head) for name, (layers, head, _) in small_2d.items()}, plane)
    equal = True
    summary["speedup_2d_vs_baseline"] = {}
    for name, (_, _, part) in small_2d.items():
        same = old[name]["num_regions"] == part.num_regions and old[name]["digest"] == pattern_digest(part.patterns.numpy())
        equal &= same
        summary["speedup_2d_vs_baseline"][name] = round(old[name]["seconds"] / quiet_2d[name][0], 1)
        print(f"{name} 2-D vs baseline {BASELINE}: regions {old[name]['num_regions']}, same patterns {same}, "
              f"{old[name]['seconds'] * 1e3:.1f} ms, x{old[name]['seconds'] / quiet_2d[name][0]:.1f}")
    return equal


def wide_rows(summary: dict, quiet_2d: dict, baseline: bool) -> bool:
    """The wide 2-D rows (c): times, and ratio to the baseline commit with equal counts and pattern sets."""
    x = random_walk(NUM_STATES)
    plane = plane_through_states(x[100], x[500], x[900], scale=PLANE_SCALE)
    nets = {"c" + ",".join(map(str, w)): he_net(w, x.shape[1], seed=i) for i, w in enumerate(WIDE_NETS)}
    old = time_baseline(nets, plane) if baseline else {}
    equal = True
    summary["wide_2d_seconds"], summary["wide_2d_vs_baseline"] = {}, {}
    for name, (layers, head) in nets.items():
        t_new, part = best_time_per_call(lambda: plane_partition(layers, head, plane))
        quiet_2d[name + " wide"] = (t_new, lambda layers=layers, head=head: plane_partition(layers, head, plane))
        summary["wide_2d_seconds"][name] = round(t_new, 3)
        line = f"{name} 2-D wide: regions {part.num_regions}, kernel {t_new:.3f} s"
        if name in old:
            same = (old[name]["num_regions"] == part.num_regions
                    and old[name]["digest"] == pattern_digest(part.patterns.numpy()))
            equal &= same
            summary["wide_2d_vs_baseline"][name] = round(old[name]["seconds"] / t_new, 1)
            line += (f"; baseline {BASELINE}: regions {old[name]['num_regions']}, same patterns {same}, "
                     f"{old[name]['seconds']:.3f} s, x{old[name]['seconds'] / t_new:.1f}")
        print(line)
    return equal


def busy_ratios(quiet_2d: dict) -> dict:
    """Each 2-D call timed again (as in quiet) while a CPU-bound process spins on another core: {net: busy / quiet}.
    With two or more cores the benchmark and the spinner are pinned to different ones for this part."""
    cpus = sorted(os.sched_getaffinity(0))
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        if len(cpus) >= 2:
            os.sched_setaffinity(spinner.pid, {cpus[1]})
            os.sched_setaffinity(0, {cpus[0]})
        time.sleep(0.5)
        ratios = {}
        for name, (t_quiet, call) in quiet_2d.items():
            t_busy, _ = best_time_per_call(call)
            ratios[name] = round(t_busy / t_quiet, 2)
            print(f"{name} 2-D busy: {t_busy * 1e3:.1f} ms, quiet {t_quiet * 1e3:.1f} ms, x{t_busy / t_quiet:.2f}")
    finally:
        spinner.kill()
        spinner.wait()
        os.sched_setaffinity(0, cpus)
    return ratios


def main() -> None:
    torch.set_num_threads(1)  # small tensors: one thread avoids scheduling overhead (docs/design.md, pitfalls)
    x = halfcheetah_states(NUM_STATES)
    plane = plane_through_states(x[100], x[500], x[900], scale=PLANE_SCALE)
    origin, basis, domain = plane.origin.numpy(), plane.basis.numpy(), plane.domain.numpy()
    summary: dict = {"speedup_1d": {}, "speedup_2d": {}}
    all_equal = True
    quiet_2d: dict = {}  # net -> (quiet seconds, the call) for the busy measurement
    small_2d: dict = {}  # net -> (layers, head, partition) for the comparison with the baseline commit
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

        t_vec, part = best_time_per_call(lambda: plane_partition(layers, head, plane))
        t = time.perf_counter()
        ref2 = plane_partition_ref(layers_np, origin, basis, domain)
        t_ref = time.perf_counter() - t
        pats_vec = {bytes(p) for p in part.unpacked_patterns().numpy().astype(np.uint8)}
        pats_ref = {bytes(p.astype(np.uint8)) for p in ref2["patterns"]}
        equal = part.num_regions == ref2["num_regions"] and pats_vec == pats_ref
        all_equal &= equal
        summary["speedup_2d"][name] = round(t_ref / t_vec, 1)
        quiet_2d[name] = (t_vec, lambda layers=layers, head=head: plane_partition(layers, head, plane))
        small_2d[name] = (layers, head, part)
        print(f"{name} 2-D: regions {part.num_regions} (loop {ref2['num_regions']}), same patterns {pats_vec == pats_ref}, "
              f"area error {abs(float(part.areas.sum()) - part.domain_area) / part.domain_area:.1e}; "
              f"kernel {t_vec * 1e3:.1f} ms, loop {t_ref * 1e3:.0f} ms, x{t_ref / t_vec:.0f}")

    if "--no-baseline" not in sys.argv:
        all_equal &= against_baseline(summary, small_2d, quiet_2d, plane)
    all_equal &= wide_rows(summary, quiet_2d, baseline="--no-baseline" not in sys.argv)
    if "--no-busy" not in sys.argv:
        summary["busy_over_quiet_2d"] = busy_ratios(quiet_2d)
    summary["counts_equal"] = bool(all_equal)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
