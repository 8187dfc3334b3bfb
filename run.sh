#!/usr/bin/env bash
# ./run.sh [MODEL|CONFIG] [key=value ...] [--resume]
#
#   MODEL     vsrnet (default) | edvr | rife | ifrnet, or a YAML config path (see configs/)
#   key=value any config override, e.g. data.dir=DATA_DIR train.steps=300000 data.loader=png
#
# Trains on every visible GPU (NCCL, one process each), or on the CPU (gloo) when there is none.
# Without data.dir=..., it prepares the built-in demo data set (data/demo) and trains briefly.
# One process runs the trainer directly; several run under torchrun (vsrvfi.trainers.launch).
# Errors are one line `error: ...` and exit status 2; Ctrl-C/SIGTERM save a checkpoint and stop
# (exit 128 + signal; --resume continues).
# Environment: NPROC (processes per machine), TORCHRUN_ARGS (multi-node rendezvous, e.g.
# "--nnodes=2 --node_rank=0 --rdzv_backend=c10d --rdzv_endpoint=host0:29400"), PYTHON.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
py="${PYTHON:-python3}"

model=vsrnet
if [ $# -gt 0 ] && [[ "$1" != *=* ]] && [[ "$1" != -* ]]; then model="$1"; shift; fi

demo=()
if ! printf '%s\n' "$@" | grep -q '^data\.dir='; then
  # A short run that finishes in minutes on a CPU: a few hundred steps on small crops, validated on
  # 8 full frames spread over the demo's val clip.
  demo=(train.steps=300 train.val_every=100 train.log_every=10 data.crop=96 train.val_frames=8
        "experiment.name=demo-$(basename "$model" .yaml)" --resume=auto)
fi

# Bad input (model, overrides, data.dir, an existing run) is reported before anything slow starts.
"$py" -m vsrvfi.trainers.train --check "$model" "${demo[@]}" "$@" || exit $?

if [ ${#demo[@]} -gt 0 ]; then
  echo "no data.dir given: preparing the built-in demo data set in data/demo (reused when present)"
  data_dir="$("$py" -m vsrvfi.tools.demo_data data/demo | tail -n 1)" || exit $?
  demo=("data.dir=$data_dir" "${demo[@]}")
fi

if [ -z "${NPROC:-}" ]; then
  NPROC=$("$py" -c "import torch; print(max(torch.cuda.device_count(), 1))")
fi
if [ "$NPROC" = 1 ] && [ -z "${TORCHRUN_ARGS:-}" ]; then
  exec "$py" -m vsrvfi.trainers.train "$model" "${demo[@]}" "$@"
fi
rdzv="${TORCHRUN_ARGS:---standalone}"
# shellcheck disable=SC2086
exec "$py" -m vsrvfi.trainers.launch $rdzv --nproc_per_node="$NPROC" -m vsrvfi.trainers.train "$model" "${demo[@]}" "$@"
