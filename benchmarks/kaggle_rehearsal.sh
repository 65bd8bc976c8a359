#!/usr/bin/env bash
# The kernel `paddy kaggle run` pushes, run as Kaggle would run it but on this machine: DRY is a `--dry-run` folder
# (dataset/ and kernel/), DATA a competition folder. It lays out /kaggle/input under $OUT/input (the competition, and
# the dataset as paddy-lib/), runs the kernel's script from an empty working folder, and leaves there what the notebook's
# output would hold. The wheel installs alone into a folder (PADDY_KAGGLE_TARGET): a machine without network can't
# fetch paddy's dependencies, so with WHEELS=DIR the ones it lacks install from there first.
#   KAGGLE_USERNAME=me KAGGLE_KEY=x paddy kaggle run demo_lite0 --repeat 2 --dry-run /tmp/dry
#   DRY=/tmp/dry DATA=../shared/data/rice OUT=/tmp/rehearsal bash benchmarks/kaggle_rehearsal.sh
set -euo pipefail
: "${DRY:?a paddy kaggle run --dry-run folder}" "${DATA:?a competition folder}"
OUT=$(realpath -m "${OUT:-kaggle-rehearsal}")
DRY=$(realpath "$DRY"); DATA=$(realpath "$DATA")
mkdir -p "$OUT/input" "$OUT/working"
cp -r "$DATA" "$OUT/input/paddy-disease-classification"
cp -r "$DRY/dataset" "$OUT/input/paddy-lib"
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1 || echo 'no GPU' > "$OUT/gpu.txt"
cd "$OUT/working"
( time PADDY_KAGGLE_INPUT="$OUT/input" PADDY_KAGGLE_TARGET="$OUT/paddy-wheel" PYTHONUNBUFFERED=1 python3 "$DRY/kernel/paddy_kaggle.py" ) 2>&1 \
  | tr '\r' '\n' | grep -v '^ |\|^█\|Warning\|warnings.warn' | tee "$OUT/kernel.log"
