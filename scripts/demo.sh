#!/usr/bin/env bash
# A short end-to-end job, offline: train the toy task until solved, then a short HalfCheetah run.
set -euo pipefail
BIN=${BIN:-.venv/bin}
DEMO_DIR=${DEMO_DIR:-demo_output}
CKPT="$DEMO_DIR/checkpoints"
mkdir -p "$CKPT"

echo "== 1/2 Car1DEnv-v1 until solved (deterministic return > 800)"
"$BIN/python" train.py --env=Car1DEnv-v1 --total_timesteps=400000 --nsteps=1000 --n_envs=2 \
    --policy_dims=c16,16 --value_dims=c32,32 --stop_at_return=800 --save_dir="$CKPT" --run_id=demo-car1d \
    --wandb_mode=offline --seed=0 2>&1 | tail -n 5

echo "== 2/2 HalfCheetah-v2 (resolved to -v5), short run"
"$BIN/python" train.py --env=HalfCheetah-v2 --total_timesteps=10000 --nsteps=1000 --n_envs=2 \
    --policy_dims=c16,16 --value_dims=c32,32 --save_dir="$CKPT" --run_id=demo-halfcheetah \
    --wandb_mode=offline --seed=0 2>&1 | tail -n 5

echo
echo "Outputs:"
echo "  run store:   $CKPT/demo-car1d and $CKPT/demo-halfcheetah (run.json, metrics.jsonl, checkpoints/, best.pt)"
echo "  wandb (offline, sync later with 'wandb sync'): $CKPT/*/wandb/"
