#!/usr/bin/env bash
# ./run.sh            prepare the built-in demo data set (data/demo) from a generated 4K video
# The trainer entry point is added by the trainer issue; until then the main job is data preparation.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec "${PYTHON:-python3}" -m tools.demo_data "$@"
