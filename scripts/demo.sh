#!/usr/bin/env bash
# The whole loop on the toy grid, offline: sweep -> random data -> evaluate -> visualize, plus a short
# HalfCheetah run. Re-running continues where the last demo stopped (finished work is skipped).
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${DEMO_DIR:-demo_output}
CKPT="$OUT/checkpoints"
SWEEP=demo-car1d
mkdir -p "$CKPT"

echo "== 1/6 toy grid: Car1DEnv-v1, widths 8/16/32 x 3 seeds (sweeps/car1d_widths.yaml), 2 at a time"
if [ -f "$CKPT/_sweeps/$SWEEP/sweep.json" ]; then
    "$BIN/python" sweep.py --resume="$SWEEP" --save_dir="$CKPT" --workers=2 --wandb_mode=offline
else
    "$BIN/python" sweep.py sweeps/car1d_widths.yaml --sweep_id="$SWEEP" --save_dir="$CKPT" --workers=2 \
        --wandb_mode=offline
fi

echo "== 2/6 Car1DEnv-v1 until solved (deterministic eval return > 800)"
if [ -f "$CKPT/demo-car1d-solved/run.json" ]; then
    "$BIN/python" train.py --resume=demo-car1d-solved --save_dir="$CKPT" --quiet
else
    "$BIN/python" train.py --env=Car1DEnv-v1 --total_timesteps=400000 --nsteps=1000 --n_envs=2 \
        --policy_dims=c16,16 --value_dims=c32,32 --stop_at_return=800 --save_dir="$CKPT" \
        --run_id=demo-car1d-solved --wandb_mode=offline --quiet
fi

echo "== 3/6 HalfCheetah-v2 (resolved to the maintained -v5), a short run"
if [ -f "$CKPT/demo-halfcheetah/run.json" ]; then
    "$BIN/python" train.py --resume=demo-halfcheetah --save_dir="$CKPT" --quiet   # finished: says so and exits
else
    "$BIN/python" train.py --env=HalfCheetah-v2 --total_timesteps=10000 --nsteps=1000 --n_envs=2 \
        --policy_dims=c16,16 --value_dims=c32,32 --save_dir="$CKPT" --run_id=demo-halfcheetah \
        --wandb_mode=offline --quiet
fi

echo "== 4/6 random lines and random-action trajectories"
"$BIN/python" randomized_metric_helper.py --sweep_id="$SWEEP" --checkpoints_dir="$CKPT" \
    --randomized_data_dir="$OUT/randomized_data"

echo "== 5/6 exact linear-region metrics for every checkpoint"
"$BIN/python" evaluate.py --sweep_id="$SWEEP" --checkpoints_dir="$CKPT" --randomized_data_dir="$OUT/randomized_data" \
    --results_dir="$OUT/results" --evaluate_random_trajectories --evaluate_random_lines --wandb_mode=offline --quiet
"$BIN/python" evaluate.py --run_id=demo-halfcheetah --checkpoints_dir="$CKPT" --results_dir="$OUT/results" \
    --wandb_mode=offline --quiet

echo "== 6/6 pictures of the partitions"
"$BIN/python" visualize_hd.py --compare "$SWEEP-000" "$SWEEP-003" "$SWEEP-006" --all_checkpoints \
    --checkpoints_dir="$CKPT" --save_path="$OUT/plots" --quiet
"$BIN/python" visualize_hd.py --run_id=demo-halfcheetah --checkpoints_dir="$CKPT" --save_path="$OUT/plots" --quiet

echo
echo "Best deterministic eval return per run (the toy task counts as solved above 800):"
"$BIN/python" - "$CKPT" "$SWEEP" <<'PY'
import json, sys
from pathlib import Path
store, sweep = Path(sys.argv[1]), sys.argv[2]
for run in [*sorted(store.glob(f"{sweep}-[0-9]*/run.json")), store / f"{sweep}-solved" / "run.json"]:
    info = json.loads(run.read_text())
    best = info.get("best_eval_return") or float("nan")
    dims = ",".join(map(str, info["config"]["policy_dims"]))
    print(f"  {info['run_id']}  c{dims:<6} seed {info['seed']}  best return {best:8.1f}  {'solved' if best > 800 else 'not yet'}")
PY
echo
echo "Outputs:"
echo "  run store:     $CKPT/<run_id>/ (run.json, metrics.jsonl, checkpoints/, best.pt; wandb offline files in wandb/)"
echo "  sweep results: $OUT/results/$SWEEP/ (sweep.csv and sweep_*.png; one folder per run with history.csv, summary.json, plots)"
echo "  HalfCheetah:   $OUT/results/demo-halfcheetah/demo-halfcheetah/"
echo "  pictures:      $OUT/plots/ (compare_*.gif animation, contact sheets, HalfCheetah plane)"
