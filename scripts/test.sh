#!/usr/bin/env bash
# Sets up what the tests need, then runs every test of the workspace:
# a Python virtual environment (.venv) with the reference tools the tests call
# (scripts/test-requirements.txt), the SmolLM2 model in the cache, then `cargo test`.
# Arguments go to `cargo test` (e.g. `scripts/test.sh -p ferrotune --test rouge`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
export FERROTUNE_PYTHON="$PWD/.venv/bin/python"
export FERROTUNE_CACHE="${FERROTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrotune}"
scripts/fetch-model.sh >/dev/null
cargo test --workspace --locked "$@"
