#!/usr/bin/env bash
# Installs, from Debian's packages, what the end-to-end tests (e2e/test.sh)
# or the demo (e2e/demo.sh) need and the machine lacks. Nothing else: it
# never stops, starts or reconfigures a service, and leaves alone whatever
# the user already runs (the tests use their own data directories and ports).
#
#   e2e/setup.sh        for the tests: PostgreSQL (server, client, pgbench),
#                       Redis (server, redis-cli), procps (ps), util-linux
#                       (unshare, setpriv, nsenter), iproute2 (ip),
#                       memcached, apache2 and cron (the sidecar tests),
#                       systemd (systemd-notify, for the notify tests),
#                       debootstrap (the Docker tier's base image)
#   e2e/setup.sh demo   for the demo: PostgreSQL, procps, util-linux
#
# While it installs, and only when the machine has no policy-rc.d of its own,
# a temporary /usr/sbin/policy-rc.d keeps the packages from starting their
# services (Debian's PostgreSQL would start a cluster "main", redis-server
# its own instance); it is removed afterwards. An existing policy-rc.d is the
# machine's owner's choice and is used as it is. Idempotent; installing needs
# root.
set -euo pipefail

for_what="${1:-test}"
case "$for_what" in test | demo) ;; *)
  echo "setup.sh: unknown argument $for_what (want test or demo)" >&2
  exit 2
  ;;
esac

need=()
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/postgres" ] || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
command -v ps >/dev/null || need+=(procps)
command -v unshare >/dev/null && command -v setpriv >/dev/null && command -v nsenter >/dev/null || need+=(util-linux)
if [ "$for_what" = test ]; then
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v redis-cli >/dev/null || need+=(redis-tools)
  command -v ip >/dev/null || need+=(iproute2)
  # The before-main tests and the application recipe (docs/recipes/app.md):
  # busybox's httpd is their small HTTP server.
  command -v busybox >/dev/null || need+=(busybox)
  # Sidecar tests: memcached beside apache2, with cron as a non-essential one.
  [ -x /usr/bin/memcached ] || need+=(memcached)
  [ -x /usr/sbin/apache2 ] || need+=(apache2)
  [ -x /usr/sbin/cron ] || need+=(cron)
  # --ready notify tests (e2e/notify_test.go): systemd-notify, the sd_notify
  # client a test's shell main runs, from Debian's systemd package. Nothing
  # is started (policy-rc.d below), and systemd does not become init.
  command -v systemd-notify >/dev/null || need+=(systemd)
fi

if [ "$for_what" = test ]; then
  # The Docker tier (e2e/docker_*_test.go): debootstrap builds the base
  # image (e2e/docker/base.sh). The Docker engine and docker-compose are
  # the machine's, started before the tests; this script does not install
  # or touch them.
  [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    # exit 101: "action forbidden by policy", so invoke-rc.d and
    # deb-systemd-invoke start nothing.
    printf '#!/bin/sh\n# temporary, written by mainstay e2e/setup.sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "setup: PostgreSQL binaries in $(pg_bin)" >&2
