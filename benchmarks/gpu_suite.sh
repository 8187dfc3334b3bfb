#!/usr/bin/env bash
# The GPU check in one command, on a GPU machine, from the repository root (see benchmarks/gpu_suite.py
# and docs/benchmarks.md, "GPU suite"):
#
#   bash benchmarks/gpu_suite.sh [--budget SECONDS] [--out DIR] [--stages install,env,...] [--dry-run]
#
# It unpacks the packages that travelled in .gpu/ (benchmarks/gpu_pack.sh) into /tmp/site, makes a 720p
# H.264 data set, runs the GPU tests and the loader, training and inference benchmarks, and writes
# summary.md, results.json and suite.tar.gz to $OUT (or --out). Exit status 1 when a stage failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m benchmarks.gpu_suite "$@"
