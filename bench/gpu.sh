#!/usr/bin/env bash
# Runs the GPU tests, the benchmark beside PyTorch, or a per-kernel profile on a CUDA machine,
# from binaries built on another (docs/gpu.md: the CUDA build). From the repository root:
#   bench/gpu.sh tests|bench|profile|all [compare.py arguments]
# Environment:
#   BIN        folder holding train-throughput and the `kernels` and `gpu_fit` test binaries,
#              plain or gzipped (NAME or NAME.gz); default target/cuda/release
#   PYTHON     interpreter with torch, transformers and peft (bitsandbytes for qlora rows)
#   REFERENCE  pytorch_reference.py (default: compare.py's)
#   OUT        where logs, JSON records and tables go (default bench/out)
#   BENCH_TIMEOUT (s, default 400), PROFILE_MODEL (llama-3.2-1b), PROFILE_MODES (lora,full)
set -u
mode=${1:-all}
shift || true
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:-target/cuda/release}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
for name in train-throughput kernels gpu_fit; do
  if [ -f "$BIN/$name.gz" ]; then gunzip -c "$BIN/$name.gz" > "$bins/$name"; chmod +x "$bins/$name"
  elif [ -f "$BIN/$name" ]; then ln -s "$(realpath "$BIN/$name")" "$bins/$name"; fi
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1

tests() {
  : > "$OUT/tests.txt"
  for t in kernels gpu_fit; do
    (cd trainer && timeout 200 "$bins/$t" --test-threads 1 > "$OUT/test-$t.txt" 2>&1)
    echo "$t rc=$?" >> "$OUT/tests.txt"
  done
  (cd trainer/tests/fixtures/nf4 && timeout 120 "$PYTHON" make_fixture.py --cuda-report \
    > "$OUT/nf4-cuda-report.txt" 2>&1)
  echo "nf4-cuda-report rc=$?" >> "$OUT/tests.txt"
}

bench() {
  local ref=()
  [ -n "${REFERENCE:-}" ] && ref=(--reference "$REFERENCE")
  timeout "${BENCH_TIMEOUT:-400}" "$PYTHON" bench/compare.py --device cuda --python "$PYTHON" \
    --bin "$bins/train-throughput" "${ref[@]}" --out "$OUT/bench.jsonl" "$@" > "$OUT/compare.log" 2>&1
  echo "compare rc=$?" >> "$OUT/compare.log"
  "$PYTHON" bench/compare.py --table "$OUT/bench.jsonl" > "$OUT/table.md" 2>&1
}

# Wall-clock steps at 2 and 16 blocks (the per-block cost and the fixed part), and ncu's
# per-kernel time over one warm-up and one timed step of 2 blocks.
profile() {
  local model=${PROFILE_MODEL:-llama-3.2-1b} m layers
  for m in $(echo "${PROFILE_MODES:-lora,full}" | tr , ' '); do
    for layers in 2 16; do
      timeout 100 "$bins/train-throughput" --device cuda --model "$model" --mode "$m" \
        --layers "$layers" --steps 5 --warmup 2 > "$OUT/wall-$m-L$layers.json" 2>&1
    done
    timeout 150 ncu --metrics gpu__time_duration.sum --print-summary per-kernel \
      "$bins/train-throughput" --device cuda --model "$model" --mode "$m" --layers 2 --steps 1 \
      --warmup 1 > "$OUT/ncu-$m.txt" 2>&1
    echo "ncu $m rc=$?" >> "$OUT/profile.txt"
  done
}

case $mode in
  tests) tests ;;
  bench) bench "$@" ;;
  profile) profile ;;
  all) tests; bench "$@" ;;
  *) echo "usage: bench/gpu.sh tests|bench|profile|all [compare.py arguments]" >&2; exit 2 ;;
esac
