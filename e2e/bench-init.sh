#!/usr/bin/env bash
# The PID 1 benchmark (issue 10): mainstay next to tini, dumb-init and
# catatonit, in one invocation, with the container-init scenario scripts
# that live outside this repository (INITBENCH_DIR, default ../shared/bench
# from the repository's root; see its README.md). Prints one Markdown table,
# medians, each figure with its ratio to tini's in the same run.
#
#   e2e/bench-init.sh [-q] [-o FILE] [LABEL=PREFIX ...]
#
#   -q             quick: fewer repetitions (a smoke test; not for quoting)
#   -o FILE        keep the scenarios' raw result lines in FILE (appended)
#   LABEL=PREFIX   more inits to measure, e.g. a variant binary:
#                  'ms-gomaxprocs1=/tmp/mainstay-variant --'
#
# Rows: start-up added over /bin/true (not PID 1, hyperfine), launch -> main
# running as PID 1, PID 1's RSS, anonymous RSS and threads while main
# sleeps, PID 1's CPU to reap 20,000 orphans, SIGTERM to PID 1 -> main's
# handler runs, and the static binary's size. mainstay is built with
# e2e/release.sh (the README's release command). The peers, hyperfine, gcc
# and python3 are installed from Debian when missing (nothing is started).
# Needs root. Takes about 10 minutes (-q: about 3) on two cores. A
# benchmark, not a test: CI does not run it. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"
export HOME="${HOME:-/root}"

quick=0 keep=""
while getopts "qo:h" o; do
  case $o in
    q) quick=1 ;;
    o) keep=$OPTARG ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

bench="${INITBENCH_DIR:-../shared/bench}"
for s in s1_overhead.py s1b_spawn.py s2_idle.py s3_orphans.py s4_siglat.py; do
  [ -f "$bench/$s" ] || {
    echo "bench-init.sh: no benchmark scenario $bench/$s: set INITBENCH_DIR to the folder with the container-init benchmark scripts (s1_overhead.py …)" >&2
    exit 1
  }
done
bench=$(cd "$bench" && pwd)
[ "$(id -u)" = 0 ] || { echo "bench-init.sh: run as root (PID namespaces, other processes' /proc)" >&2; exit 1; }

# The peers and the harness's own needs, from Debian, when missing.
need=()
for pc in tini:tini tini:tini-static dumb-init:dumb-init catatonit:catatonit hyperfine:hyperfine \
  gcc:gcc python3:python3 util-linux:unshare; do
  command -v "${pc#*:}" >/dev/null || need+=("${pc%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "bench: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/mainstay-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "bench: building the release binary (e2e/release.sh)" >&2
bash e2e/release.sh "$work/mainstay"
out="$work/results.txt"

inits=("mainstay=$work/mainstay --" "tini=tini --")
command -v dumb-init >/dev/null && inits+=("dumb-init=dumb-init")
command -v catatonit >/dev/null && inits+=("catatonit=catatonit --")
inits+=("$@")

if [ $quick = 1 ]; then
  oh="--rounds 2 --runs 200" sp="--runs 5" id="--runs 1 --window 3" orph="--runs 1" sl="--runs 5"
else
  oh="--rounds 5 --runs 1000" sp="--runs 20" id="--runs 3 --window 10" orph="--runs 3" sl="--runs 20"
fi
run() {
  echo "+ ${*#"$bench/"}" >&2
  "$@" --out "$out" >/dev/null || { echo "bench-init.sh: failed: $*" >&2; exit 1; }
}
# One scenario at a time over every init, so that a slow drift in the
# machine's load hits all of them alike.
for scen in overhead spawn idle orphans siglat; do
  for spec in "${inits[@]}"; do
    label=${spec%%=*} prefix=${spec#*=}
    # shellcheck disable=SC2086 # the repetition options are word lists
    case $scen in
      overhead) run "$bench/s1_overhead.py" --init "$prefix" --label "$label" $oh ;;
      spawn) run "$bench/s1b_spawn.py" --init "$prefix" --label "$label" $sp ;;
      idle) run "$bench/s2_idle.py" --init "$prefix" --label "$label" $id ;;
      orphans) run "$bench/s3_orphans.py" --init "$prefix" --label "$label" --n 20000 $orph ;;
      siglat) run "$bench/s4_siglat.py" --init "$prefix" --label "$label" $sl ;;
    esac
  done
done
# The binaries' sizes, as "size LABEL PATH" lines.
{
  echo "size mainstay $work/mainstay"
  echo "size tini $(command -v tini-static)"
  command -v dumb-init >/dev/null && echo "size dumb-init $(command -v dumb-init)"
  command -v catatonit >/dev/null && echo "size catatonit $(command -v catatonit)"
  for spec in "$@"; do
    label=${spec%%=*} first=${spec#*=}
    first=${first%% *}
    [ -f "$first" ] && echo "size $label $first"
  done
} >> "$out"
[ -z "$keep" ] || cat "$out" >> "$keep"

python3 - "$out" "$quick" "$(nproc)" "$(cat /proc/loadavg)" <<'PY'
import os, sys
path, quick, ncpu, load = sys.argv[1:5]
res, order, sizes = {}, [], {}
for line in open(path):
    w = line.split()
    if not w:
        continue
    if w[0] == "size":
        sizes[w[1]] = w[2]
        continue
    kv = dict(x.split("=", 1) for x in w if "=" in x)
    label = kv["init"]
    if label not in order:
        order.append(label)
    res.setdefault(label, {})[kv["scenario"]] = kv

def elf_static(p):
    """True when the ELF file has no PT_INTERP (no dynamic loader)."""
    with open(p, "rb") as f:
        h = f.read(64)
        phoff = int.from_bytes(h[32:40], "little")
        phentsize = int.from_bytes(h[54:56], "little")
        phnum = int.from_bytes(h[56:58], "little")
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    return all(int.from_bytes(ph[i * phentsize:i * phentsize + 4], "little") != 3 for i in range(phnum))

def num(label, scen, key):
    try:
        v = res[label][scen][key]
        return float(v.split("/")[0])
    except (KeyError, ValueError):
        return None

rows = [  # title, value(label) -> float, format, aim for mainstay (ratio to tini, or absolute)
    ("start-up added over `/bin/true` (not PID 1)", lambda l: num(l, "overhead", "added_ms_med"), "{:.2f} ms", ("ratio", 2)),
    ("launch → main running, as PID 1", lambda l: num(l, "spawn", "spawn_ms_med"), "{:.2f} ms", None),
    ("PID 1 RSS while main runs", lambda l: num(l, "idle", "init_rss_kb_med"), "{:.0f} kB", ("abs", 4096, "kB")),
    ("PID 1 anonymous RSS while main runs", lambda l: num(l, "idle", "init_rss_anon_kb_med"), "{:.0f} kB", ("abs", 1024, "kB")),
    ("PID 1 threads while main runs", lambda l: num(l, "idle", "init_threads_med"), "{:.0f}", None),
    ("PID 1 CPU to reap 20,000 orphans", lambda l: num(l, "orphans", "init_cpu_ms_med"), "{:.0f} ms", ("ratio", 2)),
    ("SIGTERM to PID 1 → main's handler runs", lambda l: num(l, "siglat", "latency_us_med"), "{:.0f} µs", ("ratio", 1.5)),
    ("static binary size", lambda l: os.path.getsize(sizes[l]) / 1e6 if l in sizes else None, "{:.2f} MB", ("abs", 6, "MB")),
]
print("| figure | " + " | ".join(order) + " | mainstay's aim |")
print("|---|" + "---|" * len(order) + "---|")
for title, val, fmt, aim in rows:
    tini = val("tini")
    cells = []
    for l in order:
        v = val(l)
        if v is None:
            cells.append("–")
            continue
        c = fmt.format(v)
        static = True
        if title == "static binary size":
            static = elf_static(sizes[l])
            c += (" tini-static" if l == "tini" else "") + ("" if static else " (dynamic)")
        if l != "tini" and tini and static:
            c += " (%.1f×)" % (v / tini)
        cells.append(c)
    a = "–"
    m = val("mainstay")
    if aim and m is not None:
        if aim[0] == "ratio" and tini:
            a = "≤ %g× tini: %s" % (aim[1], "met" if m <= aim[1] * tini else "not met")
        elif aim[0] == "abs":
            a = "≤ %g %s: %s" % (aim[1], aim[2], "met" if m <= aim[1] else "not met")
    print("| %s | %s | %s |" % (title, " | ".join(cells), a))
print()
print("Medians; (N×) is the ratio to tini's figure in the same run. %s CPUs, load average before the summary: %s.%s"
      % (ncpu, " ".join(load.split()[:3]), " Quick run (-q): fewer repetitions, not for quoting." if quick == "1" else ""))
PY
