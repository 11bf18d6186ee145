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
# Each scenario runs in rounds that measure every init in turn (the
# machine's load drifts), and a figure is the median of the rounds' medians;
# a second table gives their spread. Needs root. About 10 minutes for the
# four inits (-q: about 3), 2 more per extra init, on two cores. A
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

# Each scenario runs in rounds, and each round measures every init in turn,
# so that the machine's load, which drifts, hits all of them alike; a
# figure is the median of the rounds' medians.
if [ $quick = 1 ]; then
  rounds=2 oh="--rounds 1 --runs 200" sp="--runs 3" id="--runs 1 --window 3" orph="--runs 1" sl="--runs 3"
else
  rounds=5 oh="--rounds 1 --runs 1000" sp="--runs 4" id="--runs 1 --window 10" orph="--runs 1" sl="--runs 4"
fi
run() {
  echo "+ ${*#"$bench/"}" >&2
  "$@" --out "$out" >/dev/null || { echo "bench-init.sh: failed: $*" >&2; exit 1; }
}
for scen in overhead spawn idle orphans siglat; do
  n=$rounds
  case $scen in idle | orphans) n=$(( (rounds + 1) / 2 + 1 )) ;; esac # 4 rounds (2 with -q) for the long ones
  for round in $(seq 1 "$n"); do
    echo "bench: $scen, round $round of $n" >&2
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
import os, statistics, sys
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
    if kv["init"] not in order:
        order.append(kv["init"])
    res.setdefault((kv["init"], kv["scenario"]), []).append(kv)

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

def rounds(label, scen, key):
    """The rounds' medians of one figure, sorted."""
    try:
        return sorted(float(kv[key].split("/")[0]) for kv in res[(label, scen)])
    except (KeyError, ValueError):
        return []

rows = [  # title, scenario, key, format, mainstay's aim: ("ratio", N) to tini or ("abs", N, unit)
    ("start-up added over `/bin/true` (not PID 1)", "overhead", "added_ms_med", "{:.2f} ms", ("ratio", 2)),
    ("launch → main running, as PID 1", "spawn", "spawn_ms_med", "{:.2f} ms", None),
    ("PID 1 RSS while main runs", "idle", "init_rss_kb_med", "{:.0f} kB", ("abs", 4096, "kB")),
    ("PID 1 anonymous RSS while main runs", "idle", "init_rss_anon_kb_med", "{:.0f} kB", ("abs", 1024, "kB")),
    ("PID 1 threads while main runs", "idle", "init_threads_med", "{:.0f}", None),
    ("PID 1 CPU to reap 20,000 orphans", "orphans", "init_cpu_ms_med", "{:.0f} ms", ("ratio", 2)),
    ("SIGTERM to PID 1 → main's handler runs", "siglat", "latency_us_med", "{:.0f} µs", ("ratio", 1.5)),
]

def med(label, scen, key):
    v = rounds(label, scen, key)
    return statistics.median(v) if v else None

def aim_cell(aim, m, tini):
    if not aim or m is None:
        return "–"
    if aim[0] == "ratio":
        return "≤ %g× tini: %s" % (aim[1], "met" if tini and m <= aim[1] * tini else "not met")
    return "≤ %g %s: %s" % (aim[1], aim[2], "met" if m <= aim[1] else "not met")

print("| figure | " + " | ".join(order) + " | mainstay's aim |")
print("|---|" + "---|" * len(order) + "---|")
for title, scen, key, fmt, aim in rows:
    tini = med("tini", scen, key)
    cells = []
    for l in order:
        v = med(l, scen, key)
        if v is None:
            cells.append("–")
        elif l != "tini" and tini:
            cells.append(fmt.format(v) + " (%.1f×)" % (v / tini))
        else:
            cells.append(fmt.format(v))
    print("| %s | %s | %s |" % (title, " | ".join(cells), aim_cell(aim, med("mainstay", scen, key), tini)))
size = {l: os.path.getsize(p) / 1e6 for l, p in sizes.items()}
cells = []
for l in order:
    if l not in size:
        cells.append("–")
        continue
    c = "%.2f MB" % size[l] + (" tini-static" if l == "tini" else "")
    if not elf_static(sizes[l]):
        c += " (dynamic)"
    elif l != "tini" and "tini" in size:
        c += " (%.1f×)" % (size[l] / size["tini"])
    cells.append(c)
print("| static binary size | %s | %s |" % (" | ".join(cells), aim_cell(("abs", 6, "MB"), size.get("mainstay"), None)))
print()
print("Medians over rounds (each round measures every init in turn); (N×) is the ratio to tini's figure in the same run.")
print("%s CPUs, load average at the end: %s.%s" % (ncpu, " ".join(load.split()[:3]),
      " Quick run (-q): fewer repetitions, not for quoting." if quick == "1" else ""))
print()
print("Spread: the lowest and highest of the rounds' medians.")
print()
print("| figure | " + " | ".join(order) + " |")
print("|---|" + "---|" * len(order))
for title, scen, key, fmt, aim in rows:
    cells = []
    for l in order:
        v = rounds(l, scen, key)
        cells.append("–" if not v else fmt.format(v[0]).split(" ")[0] + "–" + fmt.format(v[-1]) + " (%d)" % len(v))
    print("| %s | %s |" % (title, " | ".join(cells)))
PY
