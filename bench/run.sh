#!/usr/bin/env bash
# The RGI interface benchmark in one command (issue 9, section 4).
#
#   bench/run.sh            full run: callgrind over 4,000 and 2,000 requests,
#                           CPU time over 20,000, steps over 4,000 and 2,000
#   bench/run.sh --quick    the same over 200/100 requests (CI: under a minute)
#   bench/run.sh --no-valgrind   allocations and CPU only
#
# Exits non-zero only when something failed to build or run; a missed target
# is reported in the table, not as a failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

args=("$@")
if ! command -v valgrind >/dev/null 2>&1; then
    echo "run.sh: valgrind not found; instructions will not be measured" >&2
    args+=(--no-valgrind)
fi

cargo build --release --locked -p rgi-bench --bin rgi-bench >&2

work="$(mktemp -d "${TMPDIR:-/tmp}/rgi-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"${CARGO_TARGET_DIR:-$root/target}/release/rgi-bench" report --work "$work" "${args[@]}"
