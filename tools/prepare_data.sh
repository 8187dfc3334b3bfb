#!/usr/bin/env bash
# Usage: tools/prepare_data.sh VIDEO [DATA_DIR] [options]   (see --help)
# Splits VIDEO into scenes, transcodes them to 4k/1080p/720p/540p with a short GOP, extracts PNG
# frames for the baseline loader and prints a summary. Reruns resume.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m vsrvfi.tools.prepare_data "$@"
