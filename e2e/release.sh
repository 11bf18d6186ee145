#!/usr/bin/env bash
# Builds the release binary with the one build command that README.md's
# "Install" section documents, read from the README itself so the two can
# never drift apart: e2e/release.sh [OUT] (default ./mainstay).
# Used by the Docker tests and the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-mainstay}"
cmd="$(sed -n '/^## Install/,/^## /p' README.md | grep -m1 '^CGO_ENABLED=0 go build ')"
[ -n "$cmd" ] || { echo "release.sh: no build command in README.md's Install section" >&2; exit 1; }
# The README builds ./mainstay in the repository's root; only the output differs.
cmd="${cmd/ -o mainstay / -o \"\$out\" }"
export PATH="$PATH:/usr/local/go/bin" HOME="${HOME:-/root}"
eval "$cmd"
