#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for SECONDS (default 30), failing if any
# target crashes, hangs (a single input over 10 s) or goes past 2 GiB of memory.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Runs on the stable toolchain: no sanitizer (ASan needs the nightly-only -Zsanitizer); Rust's own
# checks (bounds, overflow: cargo-fuzz builds with debug assertions) still catch the bugs that
# matter in safe code. Each target starts from its seeds (fuzz/corpus/<target>) and its fixed
# crashes (fuzz/regressions/<target>); what it learns goes to fuzz/target/corpus/<target> (ignored
# by git) and is reused by the next run; crashing inputs land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
seconds="${1:-30}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
flags=(--sanitizer none)
# fuzz/Cargo.lock is committed: refuse to build with different dependency versions.
cargo fetch --locked --manifest-path fuzz/Cargo.toml >/dev/null
cargo fuzz build "${flags[@]}"
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
failed=()
for target in "${targets[@]}"; do
  work="fuzz/target/corpus/$target"
  mkdir -p "$work"
  inputs=("$work" "fuzz/corpus/$target")
  [ -d "fuzz/regressions/$target" ] && inputs+=("fuzz/regressions/$target")
  echo "== fuzz target $target: ${seconds}s"
  # The progress lines (NEW, REDUCE, pulse) are dropped; the final stats and any crash report stay.
  set +e
  cargo fuzz run "${flags[@]}" "$target" "${inputs[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
  status="${PIPESTATUS[0]}"
  set -e
  [ "$status" = 0 ] || failed+=("$target")
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs under fuzz/artifacts/; see fuzz/README.md)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crashes"
