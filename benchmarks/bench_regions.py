"""Time the vectorized region analysis (utils.geometry.regions, utils.geometry.planes) against the simple loop implementation.

Data: one 1,000-state HalfCheetah-v5 episode under uniform random actions (seed 0), standardized by its own
mean and std (17 inputs). Nets c16,16 / c32,32 / c64,64 with 6 outputs: weights He-initialized
(N(0, 2 / fan_in), as torch.nn.init.kaiming_normal_), biases N(0, 0.1^2) -- small but nonzero, as after some
training, so first-layer hyperplanes do not all pass through the origin (the states' mean).
(a) 1-D: pieces along the 999 segments of the trajectory. (b) 2-D: partition of the plane through states 100,
500 and 900 (domain: square 1.25 x the circumcircle). The code's time, 1-D and 2-D, is the best of 5 samples of
calls in a row (below); the loop implementation runs once. Last line: JSON with speedups and whether all counts agree.

Wide nets (1-D): c128,128 and c256,256 along a 1,000-state standardized random walk in 17 dimensions, timed
against today's code (the tree of commit BASELINE, exported with git archive and run in a subprocess, so old and
new code never share an interpreter; `time_in_baseline` serves the 2-D rows too) and, for every 1-D row, again with
a CPU-bound process spinning beside the benchmark ("busy"; ratio busy / quiet).

2-D (bench_2d): the plane rows above against the loop and against today's code, and wide rows: c128,128 and
c256,256 on the plane through states 100, 500 and 900 of the random walk. Today's code must find the same regions
(count and pattern set: a hash of its sorted distinct patterns, whose time is measured here and taken off today's
time). The kernel's time is the best of 5 samples of calls in a row (>= 50 ms each) after a warm-up, so a
sub-millisecond call is not timed by one clock reading; then every 2-D row again with the other core busy.

Run: .venv/bin/python benchmarks/bench_regions.py [--skip-1d] [--skip-2d]
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
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
BASELINE = "8b06d6e"  # today's code before the compiled 1-D kernel
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


def random_walk_states(num_states: int, dim: int = 17, seed: int = 0) -> np.ndarray:
    """A standardized Gaussian random walk (num_states, dim)."""
    x = np.cumsum(np.random.default_rng(seed).normal(size=(num_states, dim)), axis=0)
    return (x - x.mean(0)) / x.std(0)


def baseline_tree(commit: str = BASELINE) -> str:
    """A temporary directory holding the library (utils, envs, models) as of ``commit``."""
    out = tempfile.mkdtemp(prefix=f"bench_regions_{commit}_")
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit, "utils", "envs", "models"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
    return out


_BASELINE_SCRIPT = """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
data = dict(np.load(sys.argv[1]))
{setup}
def run():
    return {call}
run()
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    out = run()
    best = min(best, time.perf_counter() - t)
print(json.dumps({{"seconds": best, "result": out}}))
"""


def time_in_baseline(tree: str, setup: str, call: str, arrays: dict[str, np.ndarray]) -> tuple[float, object]:
    """Best of 3 (after a warm-up) of ``call`` run by the code in ``tree`` in a fresh interpreter; ``setup`` and
    ``call`` see the arrays as ``data[name]``; ``call`` returns something JSON can carry (e.g. counts)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "inputs.npz")
        np.savez(path, **arrays)
        env = dict(os.environ, PYTHONPATH=tree)
        done = subprocess.run([sys.executable, "-c", _BASELINE_SCRIPT.format(setup=setup, call=call), path], cwd=tree,
                              env=env, check=True, capture_output=True, text=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["seconds"], out["result"]


def layer_arrays(layers) -> dict[str, np.ndarray]:
    return {f"{kind}{i}": t.numpy() for i, (W, b) in enumerate(layers) for kind, t in (("W", W), ("b", b))}


_LAYERS_FROM_DATA = "layers = [(data[f'W{i}'], data[f'b{i}']) for i in range(len([k for k in data if k[0] == 'W']))]"


def baseline_count_path(tree: str, layers, x: np.ndarray) -> tuple[float, tuple]:
    """Seconds and (transitions, regions, per layer) of today's count_path along x."""
    seconds, out = time_in_baseline(
        tree, "from utils.geometry.regions import count_path\n" + _LAYERS_FROM_DATA,
        "(lambda c: [c.num_transitions, c.num_regions, c.transitions_per_layer])(count_path(layers, data['x']))",
        {**layer_arrays(layers), "x": x})
    return seconds, (out[0], out[1], out[2])


class Spinner:
    """A CPU-bound process beside the benchmark (the "busy" case), ended on exit."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)  # past its interpreter start-up (imports, page faults): a busy core, not a starting process
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def bench_1d(summary: dict, tree: str) -> bool:
    """1-D rows: along the HalfCheetah episode (against the loop and today's code) and along the random walk for wide
    nets (against today's code); then every row again with the other core busy. Returns whether all counts agree."""
    rows = benchmark_rows()
    all_equal = True
    for key in ("speedup_1d", "speedup_1d_vs_today", "seconds_1d", "seconds_1d_today", "busy_over_quiet_1d"):
        summary.setdefault(key, {})
    quiet = {}
    for widths, seed, x in rows:
        name = "c" + ",".join(map(str, widths))
        layers, _ = he_net(widths, x.shape[1], seed=seed)
        t_new, new = best_time_per_call(lambda: path_pieces(layers, x))
        counts = (new.num_transitions, new.num_regions, new.transitions_per_layer)
        t_old, counts_old = baseline_count_path(tree, layers, x)
        equal = counts == counts_old
        line = f"{name} 1-D: transitions {counts[0]}, regions {counts[1]}, per layer {counts[2]}; {t_new * 1e3:.1f} ms, "
        line += f"today's code {t_old * 1e3:.1f} ms (x{t_old / t_new:.1f}, same counts {equal})"
        if widths in NETS:
            layers_np = [(W.numpy(), b.numpy()) for W, b in layers]
            t = time.perf_counter()
            ref = path_pieces_ref(layers_np, x)
            t_ref = time.perf_counter() - t
            same_as_loop = counts == (ref["num_transitions"], ref["num_regions"], ref["transitions_per_layer"])
            equal &= same_as_loop
            summary["speedup_1d"][name] = round(t_ref / t_new, 1)
            line += f", loop {t_ref * 1e3:.0f} ms (x{t_ref / t_new:.0f}, same counts {same_as_loop})"
        all_equal &= equal
        summary["speedup_1d_vs_today"][name] = round(t_old / t_new, 2)
        summary["seconds_1d"][name] = round(t_new, 5)
        summary["seconds_1d_today"][name] = round(t_old, 5)
        quiet[name] = (lambda layers=layers, x=x: path_pieces(layers, x), t_new)
        print(line, flush=True)
    time_busy(quiet, summary["busy_over_quiet_1d"], "1-D")
    return all_equal


def benchmark_rows() -> list[tuple[tuple[int, ...], int, np.ndarray]]:
    """(widths, seed, states) of every row: the small nets on the HalfCheetah episode, the wide ones on the walk."""
    cheetah, walk = halfcheetah_states(NUM_STATES), random_walk_states(NUM_STATES)
    return [(w, i, cheetah) for i, w in enumerate(NETS)] + [(w, i, walk) for i, w in enumerate(WIDE_NETS)]


def time_busy(quiet: dict, ratios: dict, label: str) -> None:
    """Every row's call again with the other core busy; ratios[name] = busy / quiet."""
    with Spinner():
        for name, (call, t_quiet) in quiet.items():
            t_busy, _ = best_time_per_call(call)
            ratios[name] = round(t_busy / t_quiet, 2)
            print(f"{name} {label} with the other core busy: {t_busy * 1e3:.1f} ms (x{t_busy / t_quiet:.2f} of quiet)",
                  flush=True)


def best_time_per_call(fn, min_seconds: float = 0.05, repeats: int = 5):
    """Best time of one call over ``repeats`` samples of calls in a row (each >= min_seconds), after a warm-up
    call. Returns (seconds, result)."""
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


def pattern_digest(patterns: np.ndarray) -> str:
    """sha256 of the sorted distinct rows of packed patterns (R, W): equal digests, equal pattern sets."""
    return hashlib.sha256(np.unique(np.ascontiguousarray(patterns, dtype=np.int64), axis=0).tobytes()).hexdigest()


_PLANE_SETUP = "import hashlib\nfrom utils.geometry.planes import plane_partition\n" + _LAYERS_FROM_DATA + """
head = (data['head_W'], data['head_b'])
def counted(p):
    return [p.num_regions, hashlib.sha256(np.unique(p.patterns.numpy(), axis=0).tobytes()).hexdigest()]
"""


def baseline_plane_partition(tree: str, layers, head, plane) -> tuple[float, tuple]:
    """Seconds and (regions, pattern digest) of today's plane_partition, without the time of the digest."""
    arrays = {**layer_arrays(layers), "head_W": head[0].numpy(), "head_b": head[1].numpy(),
              "origin": plane.origin.numpy(), "basis": plane.basis.numpy(), "domain": plane.domain.numpy()}
    seconds, out = time_in_baseline(
        tree, _PLANE_SETUP, "counted(plane_partition(layers, head, (data['origin'], data['basis']), data['domain']))",
        arrays)
    return seconds, (out[0], out[1])


def bench_2d(summary: dict, tree: str) -> bool:
    """2-D rows: the HalfCheetah plane (against the loop and today's code) and the random walk's plane for wide nets
    (against today's code); then every row again with the other core busy. Returns whether all counts agree."""
    rows = benchmark_rows()
    all_equal = True
    for key in ("speedup_2d", "speedup_2d_vs_today", "seconds_2d", "seconds_2d_today", "busy_over_quiet_2d"):
        summary.setdefault(key, {})
    quiet = {}
    for widths, seed, x in rows:
        name = "c" + ",".join(map(str, widths))
        layers, head = he_net(widths, x.shape[1], seed=seed)
        plane = plane_through_states(x[100], x[500], x[900], scale=PLANE_SCALE)
        call = lambda layers=layers, head=head, plane=plane: plane_partition(layers, head, plane)  # noqa: E731
        t_new, part = best_time_per_call(call)
        t_digest, digest = best_time(lambda: pattern_digest(part.patterns.numpy()))
        t_old, (regions_old, digest_old) = baseline_plane_partition(tree, layers, head, plane)
        t_old -= t_digest
        equal = (part.num_regions, digest) == (regions_old, digest_old)
        line = (f"{name} 2-D: regions {part.num_regions}, area error "
                f"{abs(float(part.areas.sum()) - part.domain_area) / part.domain_area:.1e}; {t_new * 1e3:.1f} ms, "
                f"today's code {t_old * 1e3:.1f} ms (x{t_old / t_new:.1f}, same regions {equal})")
        if widths in NETS:
            layers_np = [(W.numpy(), b.numpy()) for W, b in layers]
            t = time.perf_counter()
            ref = plane_partition_ref(layers_np, plane.origin.numpy(), plane.basis.numpy(), plane.domain.numpy())
            t_ref = time.perf_counter() - t
            pats = {bytes(p) for p in part.unpacked_patterns().numpy().astype(np.uint8)}
            same_as_loop = part.num_regions == ref["num_regions"] and pats == {bytes(p.astype(np.uint8)) for p in ref["patterns"]}
            equal &= same_as_loop
            summary["speedup_2d"][name] = round(t_ref / t_new, 1)
            line += f", loop {t_ref * 1e3:.0f} ms (x{t_ref / t_new:.0f}, same regions {same_as_loop})"
        all_equal &= equal
        summary["speedup_2d_vs_today"][name] = round(t_old / t_new, 2)
        summary["seconds_2d"][name] = round(t_new, 5)
        summary["seconds_2d_today"][name] = round(t_old, 5)
        quiet[name] = (call, t_new)
        print(line, flush=True)
    time_busy(quiet, summary["busy_over_quiet_2d"], "2-D")
    return all_equal


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
    tree = baseline_tree()
    summary: dict = {}
    all_equal = True
    try:
        if "--skip-1d" not in sys.argv[1:]:
            all_equal &= bench_1d(summary, tree)
        if "--skip-2d" not in sys.argv[1:]:
            all_equal &= bench_2d(summary, tree)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    summary["counts_equal"] = bool(all_equal)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
