#!/usr/bin/env bash
# Packs what benchmarks/gpu_suite.sh installs on a lent GPU machine, which reaches no package registry
# and takes at most 64 MiB per call (the checkout included). Run here, from the repository root, with
# network access (about 330 MB to download, then xz: 5 to 25 minutes on two shared cores):
#
#   bash benchmarks/gpu_pack.sh             # writes .gpu/part-* and .gpu/SHA256SUMS, prints the calls
#   bash benchmarks/gpu_pack.sh --resplit   # re-cut existing parts for this checkout's size (no download)
#
# One xz-compressed tar of a site-packages folder for CPython 3.12 (the GPU machine's Python), cut into
# as few parts as fit one call each beside the checkout (2 MiB kept free; CHUNK_MIB forces a size):
# NVIDIA DALI (as ../shared/gpu/pack-dali.sh packs it: the wheel unpacked, extension modules of other
# Python versions dropped) with the small packages it imports that the machine's image lacks, and the
# project's dependencies the image lacks: PyAV, imageio-ffmpeg (the ffmpeg binary), scenedetect-headless
# and platformdirs, ffmpeg-python and future, tensorboardX, pytorch-msssim, omegaconf. Wheels are
# unpacked here with their file modes (the ffmpeg binary stays executable). .gpu/ is git-ignored.
# Environment: DALI_VERSION, DALI_PACKAGE, CHUNK_MIB, PYTHON (a Python with pip; nothing is installed).
set -euo pipefail
DALI_VERSION=${DALI_VERSION:-2.4.0}
DALI_PACKAGE=${DALI_PACKAGE:-nvidia-dali-cuda120}
PY=${PYTHON:-python3}
mode=${1:-}
root=$(git rev-parse --show-toplevel)
cd "$root"
out=.gpu
git check-ignore -q "$out/part-aa" || { echo "error: $out/ is not git-ignored (.gitignore)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
archive="$work/site.tar.xz"

if [ "$mode" = "--resplit" ]; then
  [ -f "$out/SHA256SUMS" ] || { echo "error: no $out/SHA256SUMS: pack first" >&2; exit 2; }
  (cd "$out" && sha256sum --quiet -c SHA256SUMS) || { echo "error: $out parts damaged: pack again" >&2; exit 2; }
  cat $(sed 's/^[0-9a-f]* *\*\{0,1\}/.gpu\//' "$out/SHA256SUMS") > "$archive"
elif [ -n "$mode" ]; then
  echo "usage: bash benchmarks/gpu_pack.sh [--resplit]" >&2; exit 2
else
  plat=(--only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
  packages=(
    "$DALI_PACKAGE==$DALI_VERSION" makefun astunparse gast nvtx optree libcst   # DALI and what it imports
    av==18.1.0 imageio-ffmpeg==0.8.1 scenedetect-headless==0.7.2 platformdirs
    ffmpeg-python==0.2.0 future tensorboardX==2.6.5 pytorch-msssim==1.0.0 omegaconf==2.4.0
  )
  echo "downloading ${#packages[@]} wheels for CPython 3.12 ..."
  "$PY" -m pip download -q --no-deps "${plat[@]}" -d "$work/whl" "${packages[@]}" 2> >(grep -v "^WARNING: Location" >&2)
  ls -l "$work/whl"
  mkdir -p "$work/site"
  "$PY" - "$work/site" "$work/whl"/*.whl <<'PY'
import os, re, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2:]
other_py = re.compile(r"cpython-3(?!12-)\d+t?-x86_64")  # keep only CPython 3.12 extension modules
with open(os.path.join(dest, "gpu-packages.txt"), "w") as listing:
    for whl in wheels:
        listing.write(os.path.basename(whl) + "\n")
        with zipfile.ZipFile(whl) as z:
            for info in z.infolist():
                if other_py.search(info.filename) or info.filename.split("/", 1)[0].endswith(".data"):
                    continue
                path = z.extract(info, dest)
                mode = info.external_attr >> 16
                if mode and not info.is_dir():
                    os.chmod(path, mode & 0o777)
PY
  du -sh "$work/site"
  echo "compressing (minutes on 2 cores) ..."
  tar -C "$work/site" -cf - . | xz -T2 -6 > "$archive"
fi

# As few parts as fit one call each: 64 MiB less the checkout that travels with every call, less 2 MiB
tree=$(git ls-files -z -co --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
total=$(stat -c %s "$archive")
room=$((64 * 1024 * 1024 - tree - 2 * 1024 * 1024))
if [ -n "${CHUNK_MIB:-}" ]; then
  chunk=$((CHUNK_MIB * 1024 * 1024))
else
  n=$(( (total + room - 1) / room ))
  chunk=$(( (total + n - 1) / n ))
fi
[ "$chunk" -le "$room" ] || echo "warning: parts of $chunk bytes and the checkout ($tree) leave under 2 MiB of 64 MiB" >&2
rm -f "$out"/part-* "$out/SHA256SUMS"
mkdir -p "$out"
split -b "$chunk" -a 2 "$archive" "$out/part-"
(cd "$out" && sha256sum part-* > SHA256SUMS)
ls -la "$out"

parts=("$out"/part-*)
n=${#parts[@]}
cat <<MSG

$n part(s) of at most $chunk bytes in $out/ (checkout: $tree bytes). The GPU machine keeps git-ignored
files between calls only while it is warm (about 30 s after each call): make these calls back to back,
the suite last, from the checkout they send (docs/benchmarks.md, "GPU suite"; the device-time plan:
python -m benchmarks.gpu_suite --plan):
MSG
suite_timeout=$("$PY" -c 'from benchmarks.gpu_suite import CALL_TIMEOUT_S; print(CALL_TIMEOUT_S)')  # the device plan
i=0
for p in "${parts[@]}"; do
  i=$((i+1))
  if [ "$i" -eq 1 ] && [ "$n" -gt 1 ]; then
    echo "  run(carry=[\"$p\", \"$out/SHA256SUMS\"], timeout_s=120, command=\"nvidia-smi -L; ldconfig -p | grep -E 'nvcuvid|nvidia-encode'; ls -la $out\")"
  elif [ "$i" -lt "$n" ]; then
    echo "  run(carry=[\"$p\", \"$out/SHA256SUMS\"], timeout_s=60, command=\"ls -la $out\")"
  else
    echo "  run(carry=[\"$p\", \"$out/SHA256SUMS\"], timeout_s=$suite_timeout, command=\"bash benchmarks/gpu_suite.sh\")"
  fi
done
echo "Then hand the machine back; the suite's summary.md, results.json and suite.tar.gz come back from \$OUT."
