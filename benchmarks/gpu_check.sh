#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md, as one script for a lent GPU machine. Run it from the project root with OUT set
# to a folder whose files come back. CHECKS picks the sections (default: all, in this order):
#   speed  (~4 min) 10,407 synthetic 480×640 JPEGs made there; benchmarks/gpu.py: convnext_small at 288×224, paddy's
#          Learner against a bare timm loop, GPU utilisation, today's settings against the item cache + bf16 +
#          channels_last; then `paddy train convnext_small_rect` for one epoch end to end on them (export, TTA).
#   memory (~1 min) `paddy train convnext_large_rect --fit-memory 12` on 640 synthetic JPEGs: the preflight's real peaks.
#   demo   (~3 min) `paddy demo` on CUDA.
#   sweep  (~3 min) a 4-run demo sweep on the one GPU and its report.
# Where the machine has no network, set WHEELS=DIR: the wheels there (fastai and what it needs that the machine lacks)
# install with --no-index into /tmp/site, and paddy runs from this checkout. SYNTH, GPU_ARGS and TRAIN_ARGS shrink the
# speed section to try the script itself on a CPU, e.g. SYNTH=96 GPU_ARGS='--arch test_convnext --size 64 64 --bs 16'.
set -euo pipefail
OUT=${OUT:-gpu-out}
CHECKS=${CHECKS:-speed memory demo sweep}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt" || echo 'no nvidia-smi: no GPU' | tee "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  PY=python3
else
  make install > "$OUT/install.log" 2>&1
  PY=.venv/bin/python
fi
PADDY="$PY -m paddy"
clean() { tr '\r' '\n' | grep -v '^Epoch\|^ |\|^█\|Warning\|warnings.warn' || true; }
for check in $CHECKS; do case $check in
speed)
  rm -rf /tmp/synth
  time $PY benchmarks/make_synthetic.py /tmp/synth --train "${SYNTH:-10407}" --test 200 | tee "$OUT/synth.log"
  time $PY benchmarks/gpu.py /tmp/synth ${GPU_ARGS:-} 2>&1 | clean | tee "$OUT/gpu_speed.log"
  time $PADDY train convnext_small_rect --data /tmp/synth ${TRAIN_ARGS:---set pretrained=False --set epochs=1} 2>&1 | clean | tee "$OUT/train.log"
  cp models/convnext_small_rect-*.json "$OUT/" ;;
memory)
  [ -d /tmp/synth ] || $PY benchmarks/make_synthetic.py /tmp/synth --train 640 --test 10
  time $PADDY train convnext_large_rect --data /tmp/synth --set pretrained=False --set epochs=1 --fit-memory 12 2>&1 | clean | tee "$OUT/memory.log" ;;
demo)
  time $PADDY demo 2>&1 | clean | tee "$OUT/demo.log" ;;
sweep)
  # a queue of 4 runs, one process on this one GPU (compare docs/benchmarks.md's CPU times)
  time $PADDY sweep demo_scratch demo_convnext --repeat 2 --data data/demo 2>&1 | tee "$OUT/sweep.log"
  $PADDY report --dataset demo --name gpu-demo-sweep 2>&1 | tee "$OUT/report.log"
  cp reports/gpu-demo-sweep.png "$OUT/" ;;
esac; done
