#!/usr/bin/env bash
# The rgi-server benchmark in one command (issue 10, section 8).
#
#   bench/server.sh                full run (several minutes)
#   bench/server.sh --quick        every scenario with small counts (CI: about
#                                  two minutes after the release build)
#   bench/server.sh --no-valgrind  no callgrind instruction counts
#   bench/server.sh --candidate hyper   bare hyper against itself (a self-check
#                                  of the harness's noise)
#   bench/server.sh --only TEXT    only the scenarios whose name contains TEXT
#
# Loopback only; every run is bounded in count and time and every server
# stops by itself. Exits non-zero only when something failed to build or
# run; a missed target is reported in the table, not as a failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

args=("$@")
if ! command -v valgrind >/dev/null 2>&1; then
    echo "server.sh: valgrind not found; instructions will not be measured" >&2
    args+=(--no-valgrind)
fi

# 10,000 parked connections need 10,000 descriptors in the server and as
# many in the load generator (each its own process). Raise the soft limit as
# far as the hard one allows; the report skips that scenario, saying why,
# when the limit is still too low.
wanted=20000
hard="$(ulimit -Hn)"
if [ "$hard" = unlimited ] || [ "$hard" -ge "$wanted" ]; then
    ulimit -n "$wanted" 2>/dev/null || true
else
    ulimit -n "$hard" 2>/dev/null || true
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10200 ]; then
    echo "server.sh: open-files limit $(ulimit -n) (hard $hard) is below 10,200;" \
         "the 10,000-connection long-poll will be skipped" >&2
fi

cargo build --release --locked -p rgi-bench --bin rgi-bench >&2

work="$(mktemp -d "${TMPDIR:-/tmp}/rgi-server-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"${CARGO_TARGET_DIR:-$root/target}/release/rgi-bench" server-report --work "$work" "${args[@]}"
