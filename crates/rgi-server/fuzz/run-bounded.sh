#!/usr/bin/env bash
# Runs the rgi-server fuzz targets for a bounded time:
# `crates/rgi-server/fuzz/run-bounded.sh SECONDS` (default 15). Installs
# cargo-fuzz when it is missing. Fails if a target finds a crash; the input
# is left in crates/rgi-server/fuzz/artifacts/TARGET/, and becomes a
# regression test in crates/rgi-server/tests/hostile_regressions.rs.
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

# libFuzzer needs unstable compiler flags: nightly when it is installed,
# otherwise the installed compiler with RUSTC_BOOTSTRAP and no sanitizer.
toolchain=()
sanitizer=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  echo "no nightly toolchain; fuzzing with the installed compiler, without a sanitizer"
  export RUSTC_BOOTSTRAP=1
  sanitizer=(--sanitizer none)
fi

mkdir -p logs
for target in $(cargo "${toolchain[@]}" fuzz list); do
  echo "==> fuzz target $target for ${seconds}s"
  mkdir -p "corpus/$target"
  # Seeds: the hostile requests are better starting points than nothing.
  if [ -d "seeds/$target" ]; then
    cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
  fi
  log="logs/$target.log"
  # -rss_limit_mb and -timeout bound one input; -max_total_time the run.
  if ! cargo "${toolchain[@]}" fuzz run "${sanitizer[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=131072 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; the input is in $(pwd)/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$log" || true
done
echo "all rgi-server fuzz targets ran ${seconds}s each without a crash"
