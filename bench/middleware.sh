#!/usr/bin/env bash
# rgi-middleware's overhead in one command (issue 15, item 1): the hello
# application bare, behind a hand-written middleware and behind the same
# middleware in rgi_middleware::Wrapped, sync and async, in process.
#
#   bench/middleware.sh                full run: callgrind over 20,000 and 10,000 requests
#   bench/middleware.sh --quick        the same over 2,000 and 1,000 (CI)
#   bench/middleware.sh --no-valgrind  allocations only
#
# Exits non-zero only when something failed to build or run; a missed target
# is reported in the table, not as a failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

args=("$@")
if ! command -v valgrind >/dev/null 2>&1; then
    echo "middleware.sh: valgrind not found; instructions will not be measured" >&2
    args+=(--no-valgrind)
fi

cargo build --release --locked -p rgi-bench --bin rgi-bench >&2

work="$(mktemp -d "${TMPDIR:-/tmp}/rgi-bench-mw.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"${CARGO_TARGET_DIR:-$root/target}/release/rgi-bench" mw-report --work "$work" "${args[@]}"
