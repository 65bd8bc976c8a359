#!/usr/bin/env bash
# The GPU check of docs/benchmarks.md, as one script for a lent GPU machine (about 9 minutes):
# `make demo` on CUDA, one epoch of convnext_small_rect from random init on synthetic 480×640 JPEGs, a demo sweep.
# Run it from the project root with OUT set to a folder whose files come back. The exported model (~200 MB)
# is too big to bring back, so its CPU prediction runs there with the GPU hidden.
set -euo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
make install > "$OUT/install.log" 2>&1
time make demo 2>&1 | tr '\r' '\n' | grep -v '^Epoch\|^ |' | tee "$OUT/demo.log"
.venv/bin/python benchmarks/make_synthetic.py /tmp/synth --train 3000 --test 200
time .venv/bin/paddy train convnext_small_rect --data /tmp/synth --set pretrained=False --set epochs=1 2>&1 \
  | tr '\r' '\n' | grep -v '^Epoch\|^ |' | tee "$OUT/train.log"
run=$(basename models/convnext_small_rect-*.json .json)
cp "models/$run.json" "$OUT/"
time CUDA_VISIBLE_DEVICES= .venv/bin/paddy predict "$run" --data /tmp/synth --out "preds/$run-cpu.npz" 2>&1 \
  | tr '\r' '\n' | grep -v '^Epoch\|^ |' | tee "$OUT/predict_cpu.log"
# the demo sweep on the GPU: a queue of 4 runs, one process on this one GPU (compare docs/benchmarks.md's CPU times)
time .venv/bin/paddy sweep demo_scratch demo_convnext --repeat 2 --data data/demo 2>&1 | tee "$OUT/sweep.log"
.venv/bin/paddy report --dataset demo --name gpu-demo-sweep 2>&1 | tee "$OUT/report.log"
cp reports/gpu-demo-sweep.png "$OUT/"
