#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `fuzz/run-bounded.sh SECONDS`
# (default 15). Installs cargo-fuzz when it is missing. Fails if any target
# finds a crash; the input that caused it is left in fuzz/artifacts/TARGET/.
# A found crash becomes a regression test in crates/rgi/tests.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-15}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing; installing it"
  cargo install --locked cargo-fuzz
fi

# libFuzzer instrumentation needs unstable compiler flags: a nightly
# toolchain when there is one, otherwise the installed compiler with
# RUSTC_BOOTSTRAP and without a sanitizer (coverage-guided all the same).
toolchain=()
sanitizer=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  echo "no nightly toolchain; fuzzing with the installed compiler, without a sanitizer"
  export RUSTC_BOOTSTRAP=1
  sanitizer=(--sanitizer none)
fi

targets=$(cargo "${toolchain[@]}" fuzz list)
mkdir -p logs
for target in $targets; do
  echo "==> fuzz target $target for ${seconds}s"
  mkdir -p "corpus/$target"
  log="logs/$target.log"
  if ! cargo "${toolchain[@]}" fuzz run "${sanitizer[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$log" || true
done
echo "all fuzz targets ran ${seconds}s each without a crash"
