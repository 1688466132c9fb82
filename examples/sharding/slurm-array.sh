#!/bin/bash
# Clean a large query file with a Slurm job array of 8 tasks, then merge.
# `--shard auto/8` reads SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN, so --array=1-8 works
# too). The paths must be on a file system every node sees. Add `--shard-dtype f16` to halve the
# shard files (the merge then works on rows rounded to float16, no longer byte-identical).
#
#   sbatch slurm-array.sh
#   sbatch --dependency=afterok:<jobid> --wrap 'embedtune merge /shared/clean.jsonl.shards'
#SBATCH --job-name=embedtune-clean
#SBATCH --array=0-7
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=04:00:00
set -euo pipefail
embedtune clean -m /shared/models/bge-m3 -i /shared/queries.jsonl -o /shared/clean.jsonl \
  --threshold 0.7 --threads "${SLURM_CPUS_PER_TASK}" --shard auto/8 --quiet
