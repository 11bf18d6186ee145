#!/usr/bin/env bash
# The readiness benchmark (docs/performance.md): detection lag of every probe
# kind next to a bash "sleep 1" loop and Debian's wait-for-it, CPU while
# waiting, and mainstay's cost once main is ready. Takes about 20 minutes at
# the default 20 runs per case; pass e.g. -runs 5 for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"
export HOME="${HOME:-/root}" # the go command keeps its caches there
if ! command -v wait-for-it >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wait-for-it >/dev/null
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -o "$out/mainstay" ./cmd/mainstay
CGO_ENABLED=0 go build -o "$out/benchready" ./e2e/benchready
"$out/benchready" -mainstay "$out/mainstay" "$@"
