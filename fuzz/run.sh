#!/usr/bin/env bash
# Bounded fuzz run of the XML parser, as CI does it.
#
#   fuzz/run.sh [SECONDS]     (default 60)
#
# Works on the stable toolchain: cargo-fuzz passes nightly-only -Z flags to rustc, which
# RUSTC_BOOTSTRAP=1 allows on stable. The committed seeds are copied into the (git-ignored)
# working corpus so libFuzzer's new inputs never land in fuzz/seeds/.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

corpus=fuzz/corpus/xml_parse
mkdir -p "$corpus"
cp fuzz/seeds/xml_parse/* "$corpus"/

RUSTC_BOOTSTRAP=1 cargo fuzz run xml_parse "$corpus" -- -max_total_time="$seconds"
