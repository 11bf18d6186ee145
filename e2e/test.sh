#!/usr/bin/env bash
# The whole test suite: unit tests and end-to-end tests, race detector on.
# Installs what the tests need first (e2e/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"
export HOME="${HOME:-/root}" # the go command keeps its caches there

bash e2e/setup.sh
export PATH="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1):$PATH"

go vet ./...
go vet -tags e2e ./e2e/
go test -race -count=1 ./...
# The Docker tier (TestDocker*) builds images: about 6 min on a fresh machine.
go test -race -count=1 -timeout 30m -tags e2e ./e2e/
