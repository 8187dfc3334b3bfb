#!/usr/bin/env bash
# ./run.sh [MODEL|CONFIG] [key=value ...] [--resume]
#
#   MODEL     vsrnet (default) | edvr | rife | ifrnet | edvr-m-2stage | edvr-l-2stage (BasicSR's two
#             stages: configs/edvr-m-wotsa.yaml, then edvr-m.yaml from its weights), or a config path
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
self="$PWD/$(basename "${BASH_SOURCE[0]}")"
py="${PYTHON:-python3}"

model=vsrnet
if [ $# -gt 0 ] && [[ "$1" != *=* ]] && [[ "$1" != -* ]]; then model="$1"; shift; fi

# The configs hold the papers' settings (batch, crop, iterations; docs/recipes.md). Without data.dir,
# `demo_args MODEL` sets `demo` to a short run that finishes in minutes on a CPU: a few hundred steps on
# small crops, validated on 8 full frames spread over the demo's val clip. Its small settings live here
# only: the lr, schedule, EMA and warm starts of a 300-step run, per model.
demo_args() {
  local name
  name="$(basename "$1" .yaml)"
  demo=(train.steps=300 train.val_every=100 train.log_every=10 train.checkpoint_every=100 data.crop=96
        data.batch_size=3 train.val_frames=8 train.ema=0 "experiment.name=demo-$name" --resume=auto)
  case "$name" in
    vsrnet*) demo+=(model.kwargs.flow=tiny model.kwargs.residual=true optim.lr=1e-3 optim.weight_decay=0
                    task.loss=mse train.schedule.min_lr=1e-4 train.schedule.max_lr=1e-3 train.schedule.step_size=37) ;;
    edvr-?-wotsa) demo+=(task.tsa_iter=0 "train.schedule.periods=[75,75,75,75]"
                         task.metric.y_channel=true task.metric.crop_border=4) ;;
    edvr*) demo+=(task.tsa_iter=25 "train.schedule.periods=[25,50,75,75,75]"
                  task.metric.y_channel=true task.metric.crop_border=4) ;;
    rife*) demo+=(train.schedule.warmup_steps=30 train.schedule.world_ref=null) ;;
  esac
}

demo=()
has_data_dir() { printf '%s\n' "$@" | grep -q '^data\.dir='; }
if ! has_data_dir "$@"; then demo_args "$model"; fi

# BasicSR's two-stage EDVR: without TSA, then with TSA from the first stage's weights.
if [[ "$model" =~ ^edvr-([ml])-2stage$ ]]; then
  size="${BASH_REMATCH[1]}"
  bash "$self" "edvr-$size-wotsa" "$@" || exit $?
  if ! has_data_dir "$@"; then demo_args "edvr-$size-wotsa"; fi
  first="$("$py" -c 'import sys
from vsrvfi.trainers.config import load_config
from vsrvfi.trainers.train import run_dir_for
print(run_dir_for(load_config(sys.argv[1], [a for a in sys.argv[2:] if "=" in a and not a.startswith("-")])))' \
    "edvr-$size-wotsa" "${demo[@]}" "$@")" || exit $?
  echo "stage 2: edvr-$size (TSA) from $first/checkpoints/last.pth"
  exec bash "$self" "edvr-$size" "model.pretrained=$first/checkpoints/last.pth" "$@"
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
