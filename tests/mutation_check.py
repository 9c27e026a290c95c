"""Re-runnable mutation check: does the fast test tier catch deliberate one-line bugs? (not part of `make test`)

    .venv/bin/python tests/mutation_check.py            # every mutation, each against its own test files
    .venv/bin/python tests/mutation_check.py --quick    # each against the whole fast tier (slower, stricter)
    .venv/bin/python tests/mutation_check.py --only gae # mutations whose name contains "gae"

Each mutation names a file, a piece of code that must occur there exactly once, and its replacement, so it is
found by what the code says, not by a line number, and survives code moving around. A mutation whose code is no
longer there is reported as "stale" (update it, do not drop it). The repository is copied to a temporary
directory first, so an interrupted check never leaves a mutated file behind. The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    find: str       # must occur exactly once in the file
    replace: str
    tests: tuple[str, ...]  # the fast test files that should catch it


MUTATIONS: list[Mutation] = []  # filled in below, grouped by what they break


def copy_repo(dest: Path) -> None:
    """The tracked and untracked-but-not-ignored files of the repository, copied to dest."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_tests(repo: Path, tests: list[str], timeout: float) -> tuple[str, str]:
    """('killed' | 'survived' | 'timeout', last output line) of the fast tests in `repo`."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *tests]
    try:
        result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    last = (result.stdout.strip().splitlines() or [""])[-1]
    return ("survived" if result.returncode == 0 else "killed"), last


def check(mutations: list[Mutation], quick_tier: bool, timeout: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="mutation_check_") as tmp:
        repo = Path(tmp)
        copy_repo(repo)
        for m in mutations:
            path = repo / m.file
            original = path.read_text(encoding="utf-8") if path.is_file() else ""
            count = original.count(m.find)
            if count != 1:
                rows.append({"name": m.name, "status": "stale", "detail": f"code found {count} times in {m.file}"})
                print(f"{'stale':9} {m.name}: code found {count} times in {m.file}", flush=True)
                continue
            path.write_text(original.replace(m.find, m.replace), encoding="utf-8")
            try:
                status, last = run_tests(repo, ["tests"] if quick_tier else list(m.tests), timeout)
            finally:
                path.write_text(original, encoding="utf-8")
            rows.append({"name": m.name, "status": status, "detail": last})
            print(f"{status:9} {m.name}: {last}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="run the whole fast tier for every mutation")
    parser.add_argument("--only", default="", help="only mutations whose name contains this")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutation")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only in m.name]
    rows = check(chosen, args.quick, args.timeout)
    survivors = [r["name"] for r in rows if r["status"] != "killed"]
    print(json.dumps({"mutations": len(rows), "killed": len(rows) - len(survivors), "survivors": survivors}))
    return 1 if survivors else 0


def mutation(name: str, file: str, find: str, replace: str, *tests: str) -> None:
    MUTATIONS.append(Mutation(name, file, find, replace, tests))


# --- metrics: lengths, normalization, neuron count, aggregation ----------------------------------------------------
M = "utils/analysis/metrics.py"
mutation("density uses the raw-state length", M, "length_norm = path_length(x)", "length_norm = path_length(states)",
         "tests/test_metrics.py")
mutation("random trajectories use raw-state lengths", M, "        length = path_length(x)\n",
         "        length = path_length(states)\n", "tests/test_metrics.py")
mutation("density divides by the widest layer, not all neurons", M, "length_norm * policy.n_neurons",
         "length_norm * max(policy.widths)", "tests/test_metrics.py")
mutation("random-trajectory std with Bessel's correction", M, "float(np.std(values))",
         "float(np.std(values, ddof=1))", "tests/test_metrics.py")
mutation("mean-anchored lines through the raw mean", M, '("mean", x.mean(axis=0))',
         '("mean", np.asarray(points, dtype=np.float64).mean(axis=0))', "tests/test_metrics.py")
mutation("trajectory timesteps off by one", M, "int(len(states))", "int(len(states)) - 1", "tests/test_metrics.py")
mutation("raw trajectory length measured in input space", M, 'f"{p}_{t}_trajectory_length": path_length(states)',
         'f"{p}_{t}_trajectory_length": path_length(x)', "tests/test_evaluation_columns.py")
mutation("episode return of the first 999 rewards", "utils/analysis/trajectories.py",
         "return float(self.rewards.sum())", "return float(self.rewards[:-1].sum())",
         "tests/test_evaluation_columns.py")
mutation("eval_return of the next iteration", "utils/analysis/history.py",
         'returns[record["iteration"]] = float(record["eval_return"])',
         'returns[record["iteration"] - 1] = float(record["eval_return"])',
         "tests/test_evaluation_columns.py")

# --- 1-D and 2-D kernels: counting and tolerance rules ---------------------------------------------------------------
R, P = "utils/geometry/regions.py", "utils/geometry/planes.py"
mutation("transitions counted as pieces, not pieces - 1", R, "num_transitions=int(seg.shape[0] - n)",
         "num_transitions=int(seg.shape[0])", "tests/test_regions.py")
mutation("pattern bit set at pre-activation >= 0", R, "        on = z > 0\n", "        on = z >= 0\n",
         "tests/test_regions.py", "tests/test_planes.py")
K = "utils/geometry/regions_kernel.py"  # the compiled CPU kernel; R's batched code is the CUDA path
mutation("1-D kernel: zeros within 10 tol of a piece end do not split it", K,
         "lo, hi = _inwards(t0, tol, rel_tol), _inwards(t1, -tol, rel_tol)",
         "lo, hi = _inwards(t0, 10 * tol, rel_tol), _inwards(t1, -10 * tol, rel_tol)",
         "tests/test_near_tolerance.py", "tests/test_regions.py")
mutation("1-D kernel: zeros within 10 tol of each other merge", K, "> tol + rel_tol * abs(zt[r - 1])",
         "> 10 * tol + rel_tol * abs(zt[r - 1])", "tests/test_near_tolerance.py", "tests/test_regions.py")
mutation("1-D kernel: zeros within 0.1 tol of each other merge (too strict)", K, "> tol + rel_tol * abs(zt[r - 1])",
         "> 0.1 * tol + rel_tol * abs(zt[r - 1])", "tests/test_near_tolerance.py", "tests/test_regions.py")
mutation("1-D torch path: zeros within 10 tol of a piece end do not split it", R,
         "lo, hi = _shift(t0, tol, rel_tol).index_select(0, row), _shift(t1, -tol, rel_tol).index_select(0, row)",
         "lo, hi = _shift(t0, 10 * tol, rel_tol).index_select(0, row), _shift(t1, -10 * tol, rel_tol).index_select(0, row)",
         "tests/test_near_tolerance.py", "tests/test_regions.py")
mutation("1-D torch path: zeros within 10 tol of each other merge", R, "> tol[row[1:]] + rel_tol * prev.abs()",
         "> 10 * tol[row[1:]] + rel_tol * prev.abs()", "tests/test_near_tolerance.py", "tests/test_regions.py")
mutation("1-D torch path: zeros within 0.1 tol of each other merge (too strict)", R, "> tol[row[1:]] + rel_tol * prev.abs()",
         "> 0.1 * tol[row[1:]] + rel_tol * prev.abs()", "tests/test_near_tolerance.py", "tests/test_regions.py")
mutation("1-D torch path: split pieces keep stale bits (no recompute at their own midpoint)", R,
         "            if bool(redo_parent.any()):\n", "            if False:\n",
         "tests/test_near_tolerance.py", "tests/test_regions.py")
mutation("2-D: a line must clear 100 tol to cut", P, "        if abs(d) <= tol:", "        if abs(d) <= 100 * tol:",
         "tests/test_near_tolerance.py", "tests/test_planes.py")
mutation("2-D: the cheap screen drops lines that do cut", P, "return tol * math.sqrt(g2) * (1.0 - 1e-9)",
         "return 100 * tol * math.sqrt(g2)", "tests/test_near_tolerance.py", "tests/test_planes.py")

# --- PPO: bootstrap, GAE, clipping, normalization statistics --------------------------------------------------------
mutation("no bootstrap at time-limit truncation", "models/advantages.py",
         "rewards[t_idx, e_idx] += gamma * truncated_values", "rewards[t_idx, e_idx] += 0.0 * truncated_values",
         "tests/test_rollout_bookkeeping.py", "tests/test_advantages.py")
mutation("rollouts never record truncation", "models/ppo.py", "np.flatnonzero(step.truncated & ~step.terminated)",
         "np.flatnonzero(step.truncated & step.terminated)", "tests/test_rollout_bookkeeping.py")
mutation("GAE without lambda", "models/advantages.py", "decay = gamma * gae_lambda * not_done",
         "decay = gamma * not_done", "tests/test_rollout_bookkeeping.py", "tests/test_advantages.py")
mutation("numpy update clips the ratio at 2 x clip_range", "models/numpy_update.py",
         "ratio.clip(1 - cfg.clip_range, 1 + cfg.clip_range)", "ratio.clip(1 - 2 * cfg.clip_range, 1 + 2 * cfg.clip_range)",
         "tests/test_numpy_update.py", "tests/test_ppo.py")
mutation("torch update clips the ratio at 2 x clip_range", "models/ppo.py",
         "torch.clamp(ratio, 1 - cfg.clip_range, 1 + cfg.clip_range)",
         "torch.clamp(ratio, 1 - 2 * cfg.clip_range, 1 + 2 * cfg.clip_range)", "tests/test_ppo.py",
         "tests/test_numpy_update.py")
mutation("minibatch advantages scaled by the population std", "models/numpy_update.py",
         "block.std(axis=1, ddof=1, keepdims=True)", "block.std(axis=1, ddof=0, keepdims=True)",
         "tests/test_numpy_update.py")
mutation("observations divided by the variance, not the std", "models/normalization.py",
         "return mean, np.sqrt(var + epsilon)", "return mean, var + epsilon", "tests/test_normalization.py",
         "tests/test_metrics.py")
mutation("running variance without the between-batch term", "models/normalization.py",
         "+ delta**2 * self.count * batch_count / total", "", "tests/test_normalization.py")
mutation("rewards scaled by the return variance, not its std", "models/normalization.py",
         "rewards / np.sqrt(self.ret_rms.var + EPSILON)", "rewards / (self.ret_rms.var + EPSILON)",
         "tests/test_normalization.py")
mutation("observations not clipped to +-10", "models/normalization.py",
         "np.clip((obs - shift) / scale, -clip_obs, clip_obs)", "(obs - shift) / scale", "tests/test_normalization.py")
mutation("Gaussian log-prob without the log-std term", "models/numpy_update.py",
         "- (log_std.sum() + 0.5 * LOG_2PI * log_std.size)", "- (0.5 * LOG_2PI * log_std.size)",
         "tests/test_numpy_update.py", "tests/test_ppo.py")

# --- pictures ---------------------------------------------------------------------------------------------------------
mutation("regions painted in another region's colour", "utils/pictures/partition_drawing.py",
         "coll.set_facecolor(pattern_colors(policy_patterns(frame.policy, part).cpu().numpy()))",
         "coll.set_facecolor(pattern_colors(policy_patterns(frame.policy, part).cpu().numpy())[::-1])",
         "tests/test_visualize.py")

# --- episodes and the run store --------------------------------------------------------------------------------------
mutation("trajectory states shifted by one step (s_1..s_T)", "utils/analysis/trajectories.py",
         "            states.append(s)\n", "            states.append(np.asarray(obs, dtype=np.float64))\n",
         "tests/test_trajectories.py")
mutation("checkpoints listed in name order", "utils/runs/store.py", "        return sorted(found)\n",
         "        return sorted(found, key=lambda item: item[1].name)\n", "tests/test_run_store.py")


# --- resume: which checkpoints belong to a run, and nothing written before the plan holds ---------------------------
T, RH = "utils/jobs/train.py", "tests/test_resume_hostile.py"
mutation("resume overwrites newer checkpoints it did not write", T,
         "for iteration, named in reversed(foreign) if iteration > start]",
         "for iteration, named in reversed(foreign) if False]", RH)
mutation("resume overwrites a best.pt it did not write", T, 'in_the_way.append(f"best.pt ({reason})")', "pass", RH)
mutation("resume takes another run's checkpoints", T, "if owner is not None and owner != run_id:", "if False:", RH)
mutation("resume ignores the iteration a checkpoint holds", T,
         'if iteration is not None and state["iteration"] != iteration:', "if False:", RH)
mutation("resume does not check tensor shapes while planning", T, "mismatch = state_mismatch(config, state)",
         "mismatch = None", RH)
mutation("resume truncates the logs before the checkpoint loaded", T,
         "                trainer.load_state_dict(plan.resume.checkpoint)\n"
         "            # only now that the run surely continues from there: forget the iterations it will train again\n"
         "            write_iteration_logs(plan.resume.kept_logs)\n",
         "                write_iteration_logs(plan.resume.kept_logs)\n"
         "                trainer.load_state_dict(plan.resume.checkpoint)\n", RH)
mutation("resume of a run without checkpoints is a dead end", T,
         'notices.append(f"notice: run {run.run_id} has no checkpoint yet;',
         'raise UserError(f"notice: run {run.run_id} has no checkpoint yet;', RH)
mutation("resume restarts without the pretrained weights it started from", T,
         'pretrained = _reload_initial(run, stored_flags, config, "pretrained_path", weights=True)',
         "pretrained = None", RH)
mutation("resume does not check that the run can be written", T, "    check_run_writable(run)\n", "", RH)
mutation("resume: the config digest depends on the device", "models/checkpoint.py",
         'NOT_IDENTITY = ("device", "total_timesteps")', 'NOT_IDENTITY = ("total_timesteps",)', RH)

# --- in-training evaluation in a background worker: the same files as in-process -------------------------------------
L, EW = "utils/jobs/train_loop.py", "tests/test_eval_worker.py"
mutation("background evaluation: a stop at k keeps the trainer at k + 1", L,
         "        trainer.load_state_dict(pending.payload)  # back to the stopping iteration", "        pass  #", EW)
mutation("background evaluation: the snapshot keeps the previous eval return", L,
         "        pending.payload.update(eval_return=trainer.last_eval_return, best_eval_return=trainer.best_eval_return)",
         "        pass", EW)
mutation("background evaluation: the trainer's share is the first episodes, not the last", L,
         "        return self.trainer.record_evaluation(returns + returns_here)",
         "        return self.trainer.record_evaluation(returns_here + returns)", EW)
mutation("background evaluation: the share seeded from the request's first episode", "models/evaluation.py",
         "replace(self, seed=self.seed + head, episodes=tail)", "replace(self, episodes=tail)", EW)
mutation("background evaluation: a divergence in k + 1 loses iteration k", L,
         "                    if pending is not None and write_pending(pending):", "                    if False:", EW)


if __name__ == "__main__":
    sys.exit(main())
