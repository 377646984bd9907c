#!/usr/bin/env bash
# The rgi-tower benchmark in one command (issue 14, item 6): an RGI hello
# through rgi-tower's bridge on bare hyper, the same hello on rgi-server, and
# an axum Router mounted in rgi-server, each against bare hyper measured in
# the same run (and the mounted Router against the same Router on bare hyper).
#
#   bench/tower.sh                full run (about ten minutes on two cores)
#   bench/tower.sh --quick        every comparison with small counts (CI)
#   bench/tower.sh --no-valgrind  no callgrind instruction counts
#   bench/tower.sh --only TEXT    only the comparisons whose name contains TEXT
#
# Loopback only; every run is bounded in count and time and every server
# stops by itself. Exits non-zero only when something failed to build or
# run; a missed target is reported in the table, not as a failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

args=("$@")
if ! command -v valgrind >/dev/null 2>&1; then
    echo "tower.sh: valgrind not found; instructions will not be measured" >&2
    args+=(--no-valgrind)
fi

cargo build --release --locked -p rgi-bench --bin rgi-bench >&2

work="$(mktemp -d "${TMPDIR:-/tmp}/rgi-tower-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"${CARGO_TARGET_DIR:-$root/target}/release/rgi-bench" tower-report --work "$work" "${args[@]}"
