#!/usr/bin/env bash
# Installs what the demo and the end-to-end tests need, from Debian's
# packages, when it is missing: PostgreSQL (server, client, pgbench), Redis
# (server and redis-cli), procps (ps), util-linux (unshare, setpriv, nsenter),
# iproute2 (ip, to bring up a test network namespace's loopback). Idempotent; needs root on a fresh machine.
# Debian's postgresql package creates and may start a cluster "main" that
# mainstay does not use: it is stopped, so nothing is left listening.
set -euo pipefail

need=()
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/postgres" ] || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v ps >/dev/null || need+=(procps)
command -v unshare >/dev/null && command -v setpriv >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)

# The Docker tier (e2e/docker_*_test.go): debootstrap builds the base image
# (e2e/docker/base.sh). The Docker engine and docker-compose themselves are
# the machine's, started before the tests; this script does not install or
# touch them.
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Stop any cluster the package started; our tests use their own initdb
# directories and ports.
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
    if [ "$status" = online ]; then pg_ctlcluster "$ver" "$name" stop || true; fi
  done
fi
# The same for the redis-server package's own instance, where an init
# system started one.
if command -v service >/dev/null && pgrep -x redis-server >/dev/null 2>&1; then
  service redis-server stop >/dev/null 2>&1 || true
fi
echo "setup: PostgreSQL binaries in $(pg_bin)" >&2
