#!/usr/bin/env bash
# The embedded default, end to end on the CPU: fetch SmolLM2-135M-Instruct, fine-tune it with LoRA on
# the shipped dialogue-summarisation data, and print ROUGE of the untuned and the tuned model.
# Extra arguments go to `ferrotune train` (e.g. --set training.max_steps=5).
set -euo pipefail
cd "$(dirname "$0")/.."
export FERROTUNE_CACHE="${FERROTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrotune}"
scripts/fetch-model.sh >/dev/null
cargo build --release --locked -p ferrotune
exec target/release/ferrotune train --config configs/quickstart.yaml "$@"
