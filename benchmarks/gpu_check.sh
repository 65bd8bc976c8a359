#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md, as one script for a lent GPU machine. Run it from the project root with OUT set
# to a folder whose files come back. CHECKS picks the sections (default: all, in this order):
#   speed  SYNTH (10,407) synthetic 480×640 JPEGs made there; benchmarks/gpu.py's one table: for each of EXPS
#          (convnext_small_rect vit_small_squish swin_small_squish), a bare timm loop eager and compiled, paddy's
#          Learner before issue 15, now, and with compile = True (img/s, GPU utilisation, peak memory, compile s);
#          the syncs left in a training epoch; the cold epoch against fastai's default at 4 workers. Then
#          `paddy train convnext_small_rect` for one epoch end to end (export, TTA). Not yet timed on a GPU: expect
#          1–3 min of compiling per experiment; for a 15-minute budget, SYNTH=5000 and one or two EXPS a call: the
#          rows gather in $ROWS (/tmp/paddy-gpu-rows.csv, kept while the machine stays warm), each call prints them
#          all and copies them to $OUT.
#   compile `paddy train convnext_small_rect --set compile=True` end to end from a weights file (so one frozen epoch,
#          then one unfrozen): its .json's compile seconds, graphs and fit time, the recompile at unfreeze included.
#   memory (~1 min) `paddy train convnext_large_rect --fit-memory 12` on 640 synthetic JPEGs: the preflight's real peaks.
#   demo   (~3 min) `paddy demo` on CUDA.
#   sweep  (~3 min) a 4-run demo sweep on the one GPU and its report.
# Where the machine has no network, set WHEELS=DIR: the wheels there (fastai and what it needs that the machine lacks)
# install with --no-index into /tmp/site, and paddy runs from this checkout. SYNTH, GPU_ARGS and TRAIN_ARGS shrink the
# speed section to try the script itself on a CPU, e.g. SYNTH=96 EXPS=convnext_small_rect GPU_ARGS='--bs 8 --steps 3
# --set arch=test_convnext --set item_size=64 --set aug_size=32 --set compile_backend=aot_eager'.
set -euo pipefail
OUT=${OUT:-gpu-out}
CHECKS=${CHECKS:-speed compile memory demo sweep}
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
  [ -f /tmp/synth/train.csv ] && [ "$(( $(wc -l < /tmp/synth/train.csv) - 1 ))" = "${SYNTH:-10407}" ] || {
  rm -rf /tmp/synth
  time $PY benchmarks/make_synthetic.py /tmp/synth --train "${SYNTH:-10407}" --test 200 | tee "$OUT/synth.log"; }
  ROWS=${ROWS:-/tmp/paddy-gpu-rows.csv}
  [ -f "$ROWS" ] && COLD=--no-cold || COLD=  # the cold epoch once, with the first call's rows
  time $PY benchmarks/gpu.py /tmp/synth --exps ${EXPS:-convnext_small_rect vit_small_squish swin_small_squish} \
    --rows "$ROWS" $COLD ${GPU_ARGS:-} 2>&1 | clean | tee -a "$OUT/gpu_speed.log"
  cp "$ROWS" "$OUT/gpu_rows.csv"
  time $PADDY train convnext_small_rect --data /tmp/synth ${TRAIN_ARGS:---set pretrained=False --set epochs=1} 2>&1 | clean | tee "$OUT/train.log"
  cp models/convnext_small_rect-*.json "$OUT/" ;;
compile)
  [ -d /tmp/synth ] || $PY benchmarks/make_synthetic.py /tmp/synth --train "${SYNTH:-10407}" --test 200
  $PY -c "import timm, torch; torch.save(timm.create_model('convnext_small').state_dict(), '/tmp/convnext_small.pth')"
  time $PADDY train convnext_small_rect --data /tmp/synth --set pretrained=/tmp/convnext_small.pth --set epochs=1 \
    --set compile=True 2>&1 | clean | tee "$OUT/compile.log"
  for f in models/convnext_small_rect-*.json; do cp "$f" "$OUT/compiled-$(basename "$f")"; done ;;
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
