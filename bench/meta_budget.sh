#!/usr/bin/env bash
# Issue 16's PEARL experiment: PEARL and CoCOA on cheetah_vel, 3 seeds each, at the CPU budget
# of docs/pearl-fidelity.md (PEARL's schedule and config for the family, networks 3x128, RL
# batch 128 per task): 50k updates by 325k env steps. Two runs at a time, one thread and one
# core each (~1 h per run on a 2-core CPU), then the seed-averaged curves.
#   bash bench/meta_budget.sh [OUT_DIR] [STEPS]
set -euo pipefail
out=${1:-runs/pearl-budget}
steps=${2:-325000}  # 100 tasks x 2000 initial steps + 25 iterations x (5 x 1000 steps)
budget=(hidden=128,128,128 encoder_hidden=128,128,128 batch_size=128)
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
mkdir -p "$out"
jobs=()
for seed in 0 1 2; do
  for algo in pearl cocoa; do
    jobs+=("$algo $seed")
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -L 1 bash -c '
  metra meta-train --task cheetah_vel --algo "$0" --seed "$1" --steps '"$steps"' \
    --out "'"$out"'/cheetah_vel-$0-seed$1" '"${budget[*]}"' \
    > "'"$out"'/cheetah_vel-$0-seed$1.log" 2>&1 && echo "done $0 $1"'
metra meta-compare "$out"/cheetah_vel-*-seed*/ --out "$out/compare-cheetah_vel"
