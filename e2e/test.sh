#!/usr/bin/env bash
# The whole test suite: go vet, the unit tests, then the end-to-end tests,
# race detector on. Installs what the tests need first (e2e/setup.sh).
#
# Progress is one line per test as it finishes (gotestsum, pinned as a tool
# in go.mod; GOTESTSUM_FORMAT=dots, pkgname, standard-verbose… changes it),
# failures are repeated at the end, and the last line counts them all:
# "N passed, N failed, N skipped". The exit status is non-zero when any test
# or package fails. Extra arguments go to both go test runs, for example
#   e2e/test.sh -run 'TestSignal'
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"
export HOME="${HOME:-/root}" # the go command keeps its caches there

bash e2e/setup.sh
export PATH="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1):$PATH"

echo "== go vet" >&2
go vet ./...
go vet -tags e2e ./e2e/

echo "== building gotestsum (go tool, cached after the first run)" >&2
go build -o /dev/null tool
echo "== unit tests, then end-to-end tests (-race)" >&2
# One gotestsum over both runs, so that one summary counts them all. A
# package that fails to build or panics outside a test counts as failed.
# shellcheck disable=SC2016 # expanded by the post-run command's own bash
exec go tool gotestsum --format "${GOTESTSUM_FORMAT:-testname}" --raw-command \
  --post-run-command 'bash -c "
    [ \"$TESTS_ERRORS\" = 0 ] || echo \"$TESTS_ERRORS package errors (build failure or panic), counted as failed: see above\"
    echo \"$((TESTS_TOTAL - TESTS_FAILED - TESTS_SKIPPED)) passed, $((TESTS_FAILED + TESTS_ERRORS)) failed, $TESTS_SKIPPED skipped\""' \
  -- bash -c 'go test -json -race -count=1 "$@" ./...; unit=$?
              go test -json -race -count=1 -timeout 45m -tags e2e "$@" ./e2e/; e2e=$?
              exit $((unit | e2e))' go-test "$@"
