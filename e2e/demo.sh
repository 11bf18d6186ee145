#!/usr/bin/env bash
# A realistic demo of mainstay's whole lifecycle, the way a container runs it:
# PostgreSQL as main, a migration and a seed as helpers, mainstay as root and
# PID 1 of a fresh PID namespace (what "docker run" gives it), then "docker stop".
#
#   1. build the release binary (e2e/release.sh, the README's one build
#      command); install PostgreSQL from Debian if missing (e2e/setup.sh demo)
#   2. initdb a throw-away data directory, write a migration and a seed
#   3. mainstay --user postgres --ready tcp:PORT --ready "exec:pg_isready ..." \
#        --helper "psql ... -f 001_schema.sql" --helper "psql ... -f 002_seed.sql" \
#        --ready-file ... --once-marker ... --stop-signal SIGINT --grace 20s \
#        -- postgres -D DATA ...
#   4. "mainstay health" (as a HEALTHCHECK would run it), then query the
#      seeded table while the server runs
#   5. SIGTERM to mainstay (docker stop): PostgreSQL shuts down cleanly and
#      mainstay exits with its code, 0
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"
export HOME="${HOME:-/root}" # the go command keeps its caches there
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates a PID namespace and drops to user postgres)" >&2; exit 1; }

bash e2e/setup.sh demo
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
export PATH="$PGBIN:$PATH"

work=$(mktemp -d /tmp/mainstay-demo.XXXXXX)
chmod 755 "$work"
cleanup() {
  [ -n "${ns:-}" ] && kill -KILL "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building mainstay (e2e/release.sh: static, stripped)"
bash e2e/release.sh "$work/mainstay"
file "$work/mainstay" 2>/dev/null | sed 's/^/   /' || true

# A free port on the loopback.
port=$(( 20000 + RANDOM % 20000 ))
while (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

echo "== initdb in $work/data, port $port"
install -d -o postgres -g postgres "$work/data" "$work/sock"
runuser -u postgres -- initdb -D "$work/data" -A trust -U postgres >/dev/null

cat > "$work/001_schema.sql" <<'SQL'
CREATE TABLE IF NOT EXISTS products (id serial PRIMARY KEY, name text UNIQUE NOT NULL, price numeric NOT NULL);
SQL
cat > "$work/002_seed.sql" <<'SQL'
INSERT INTO products (name, price) VALUES ('kettle', 29.90), ('teapot', 19.50), ('mug', 7.00)
ON CONFLICT (name) DO NOTHING;
SQL

psql_="psql -X -q -1 -h 127.0.0.1 -p $port -U postgres -v ON_ERROR_STOP=1"
echo "== starting: mainstay as root and PID 1, PostgreSQL as main (user postgres), two helpers"
cat <<CMD
   unshare --pid --fork --mount-proc $work/mainstay --user postgres
     --ready tcp:127.0.0.1:$port --ready "exec:pg_isready -q -h 127.0.0.1 -p $port"
     --helper "$psql_ -f $work/001_schema.sql postgres"
     --helper "$psql_ -f $work/002_seed.sql postgres"
     --ready-file $work/ready --once-marker $work/data/.initialised
     --stop-signal SIGINT --grace 20s
     -- postgres -D $work/data -p $port -c listen_addresses=127.0.0.1 -k $work/sock
CMD
unshare --pid --fork --mount-proc \
  "$work/mainstay" --user postgres \
    --ready "tcp:127.0.0.1:$port" \
    --ready "exec:pg_isready -q -h 127.0.0.1 -p $port" \
    --helper "$psql_ -f $work/001_schema.sql postgres" \
    --helper "$psql_ -f $work/002_seed.sql postgres" \
    --ready-file "$work/ready" --once-marker "$work/data/.initialised" \
    --stop-signal SIGINT --grace 20s \
    -- postgres -D "$work/data" -p "$port" -c listen_addresses=127.0.0.1 -k "$work/sock" &
ns=$!

# mainstay is PID 1 inside the namespace; from here it is unshare's child.
for _ in $(seq 1 100); do
  pid1=$(awk '{print $1}' "/proc/$ns/task/$ns/children" 2>/dev/null || true)
  [ -n "$pid1" ] && break
  sleep 0.01
done
health() {
  local state code
  state=$(nsenter -t "$pid1" --pid --mount -- "$work/mainstay" health --ready-file "$work/ready") && code=0 || code=$?
  echo "== HEALTHCHECK $1: mainstay health -> $state (exit $code)"
}
health "during start-up"

# The ready file appears once the server is ready and both helpers succeeded.
for _ in $(seq 1 300); do
  [ -e "$work/ready" ] && break
  sleep 0.1
done
health "once ready"
echo "== the server runs, migrated and seeded:"
$psql_ -c 'SELECT id, name, price FROM products ORDER BY id' postgres

echo "== docker stop: SIGTERM to mainstay (host pid $pid1)"
kill -TERM "$pid1"
set +e
wait "$ns"
code=$?
set -e
ns=
echo "== mainstay exited with $code"
exit "$code"
