#!/usr/bin/env bash
# The CPU-budget meta-RL comparison of the issue: PEARL and CoCOA, 3 seeds, on cheetah_vel and
# ant_dir, two runs at a time with one thread each; then the seed-averaged curves.
#   bash bench/meta_sweep.sh [OUT_DIR] [CHEETAH_STEPS] [ANT_STEPS]
# The schedule is PEARL's with fewer, smaller updates (see docs/meta-rl.md for the reasons);
# the issue-16 budget experiment at PEARL's rules is bench/meta_budget.sh.
set -euo pipefail
out=${1:-runs/meta-sweep}
cheetah_steps=${2:-160000}
ant_steps=${3:-25000}
budget=(num_initial_steps=400 grad_steps=250 meta_batch=8 batch_size=128 hidden=256,256)
# The rules these figures were measured with, before docs/pearl-fidelity.md.
budget+=(context_size=64 collect_until=trajectories extra_rl_first_prior=false)
budget+=(tasks_with_replacement=false eval_rollouts=10)
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
jobs=()
for seed in 0 1 2; do
  for algo in pearl cocoa; do
    jobs+=("cheetah_vel $algo $seed $cheetah_steps 20000")
    jobs+=("ant_dir $algo $seed $ant_steps 5000")
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -L 1 bash -c '
  metra meta-train --task "$0" --algo "$1" --seed "$2" --steps "$3" \
    --out "'"$out"'/$0-$1-seed$2" eval_every="$4" '"${budget[*]}"' \
    > "'"$out"'/$0-$1-seed$2.log" 2>&1 && echo "done $0 $1 $2"'
for task in cheetah_vel ant_dir; do
  metra meta-compare "$out/$task"-*-seed*/ --out "$out/compare-$task"
done
