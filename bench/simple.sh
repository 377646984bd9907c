#!/usr/bin/env bash
# The rgi-simple-server benchmark in one command (issue 12, item 6).
#
#   bench/simple.sh              full run: 5 interleaved rounds per scenario
#                                (a few minutes)
#   bench/simple.sh --quick      every scenario, one round, small counts
#                                (CI: under a minute after the release build)
#   bench/simple.sh --no-strace  no syscall counts
#   bench/simple.sh --rounds N   N rounds per scenario
#   bench/simple.sh --only TEXT  only the scenarios whose name contains TEXT
#                                ("(a)" ... "(e)")
#
# Loopback only; every run is bounded in count and time and every server
# stops by itself. Exits non-zero only when something failed to build or
# run; a missed target is a MISSED row, not a failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

args=("$@")
if ! command -v strace >/dev/null 2>&1; then
    echo "simple.sh: strace not found; syscalls will not be counted" >&2
    args+=(--no-strace)
fi

# 10,000 idle connections need 10,000 descriptors in the server and as many
# in the load generator (each its own process). Raise the soft limit as far
# as the hard one allows; the report skips that scenario, saying why, when
# the limit is still too low.
wanted=20000
hard="$(ulimit -Hn)"
if [ "$hard" = unlimited ] || [ "$hard" -ge "$wanted" ]; then
    ulimit -n "$wanted" 2>/dev/null || true
else
    ulimit -n "$hard" 2>/dev/null || true
fi

cargo build --release --locked -p rgi-bench --bin rgi-bench >&2

work="$(mktemp -d "${TMPDIR:-/tmp}/rgi-simple-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"${CARGO_TARGET_DIR:-$root/target}/release/rgi-bench" simple-report --work "$work" "${args[@]}"
