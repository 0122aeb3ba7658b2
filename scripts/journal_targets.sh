#!/usr/bin/env bash
# Measures one recon binary against the targets of the journal issue (#22), on nights generated
# by `recon bench-data`, and prints one line per figure. The machine is noisy: the yardstick and
# recon are alternated, and each figure is given as the range over the rounds.
#
#   scripts/journal_targets.sh BINARY [quick|all] [ROUNDS]
#
# quick (default, a few minutes): the 100k night against 120k open top-ups, recon and the Python
#   yardstick (../shared/bench, needs `pip install lxml`) alternated; database growth per top-up
#   and per bank transaction; `topups import` rows/s into an empty database.
# all (about an hour on 2 cores, 10 GB of scratch): also the 1M night (time against the 100k
#   night's, peak memory), a second 20k night against 75k and against 2.5M open top-ups, import rows/s
#   into a database holding 2.5M, and the 100k night after 30 earlier nights.
# Scratch files go to ${TMPDIR:-/tmp}/recon-targets and are removed at the end.
set -euo pipefail
bin=$(realpath "$1") mode=${2:-quick} rounds=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${TMPDIR:-/tmp}/recon-targets
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

secs() { # seconds taken by a command, its output discarded
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || [ $? = 65 ]
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
peak_mb() { # peak resident memory of a command in MB
  /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1 / 1024}'
}
range() { sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f\n", lo, hi}'; }
size() { stat -c %s "$1"; }
night() { # night DIR TOPUPS TRANSACTIONS [bench-data flags]
  local dir=$1 topups=$2 n=$3
  shift 3
  "$bin" -q bench-data --topups "$topups" --transactions "$n" --out "$dir" "$@" >/dev/null
}
fresh_db() { # fresh_db NIGHT DB: the night's top-ups imported into a new database
  rm -f "$2" "$2"-wal "$2"-shm "$2".deliveries
  "$bin" -q topups import --db "$2" "$1/topups.csv" >/dev/null
}
run() { # run DB NIGHT OUT
  rm -rf "$3"
  "$bin" -q run --db "$1" --out "$3" "$2/statement.xml"
}

echo "recon: $("$bin" --version), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"

# The 100k night against 120k open top-ups, alternated with the yardstick.
night "$work/n100k" 120000 100000 --seed 1
yardstick=""
if python3 -c 'import lxml' 2>/dev/null; then yardstick=yes; fi
: >"$work/recon.times"
: >"$work/peer.times"
for _ in $(seq "$rounds"); do
  fresh_db "$work/n100k" "$work/db.sqlite"
  secs run "$work/db.sqlite" "$work/n100k" "$work/out" >>"$work/recon.times"
  if [ -n "$yardstick" ]; then
    rm -f "$work/peer.sqlite" && mkdir -p "$work/peer-out"
    python3 "$root/../shared/bench/peer_load.py" "$work/peer.sqlite" "$work/n100k/topups.csv" >/dev/null
    secs python3 "$root/../shared/bench/peer_lxml.py" "$work/peer.sqlite" "$work/peer-out" \
      "$work/n100k/statement.xml" >>"$work/peer.times"
  fi
done
echo "100k night, recon: $(range <"$work/recon.times") s"
if [ -n "$yardstick" ]; then
  echo "100k night, Python yardstick: $(range <"$work/peer.times") s"
  paste "$work/peer.times" "$work/recon.times" | awk '{print $1 / $2}' | range | sed 's/^/100k night, recon faster than the yardstick by: /; s/$/x (target: at least 4x)/'
else
  echo "100k night, Python yardstick: skipped (pip install lxml)"
fi

# Database growth: per top-up imported, per bank transaction of the night.
rm -f "$work/grow.sqlite"*
"$bin" -q topups import --db "$work/grow.sqlite" "$work/n100k/topups.csv" >/dev/null
imported=$(size "$work/grow.sqlite")
run "$work/grow.sqlite" "$work/n100k" "$work/out" >/dev/null || true
"$bin" -q check --db "$work/grow.sqlite" >/dev/null # checkpoints the WAL into the file
after=$(size "$work/grow.sqlite")
echo "database: $((imported / 120000)) bytes per top-up, $(((after - imported) / 100000)) bytes per bank transaction (target: at most 250 each; the camt file is $(($(size "$work/n100k/statement.xml") / 1000000)) MB)"

# Import rate into an empty database.
: >"$work/import.times"
for _ in $(seq "$rounds"); do
  rm -f "$work/imp.sqlite"*
  secs "$bin" -q topups import --db "$work/imp.sqlite" "$work/n100k/topups.csv" >>"$work/import.times"
done
sort -n "$work/import.times" | awk '{print 120000 / $1}' | range | sed 's/^/topups import into an empty database: /; s/$/ rows\/s (target: at least 200,000)/'

[ "$mode" = all ] || exit 0

# The 1M night against 1.2M open top-ups: time against the 100k night's, and peak memory.
night "$work/n1m" 1200000 1000000 --seed 2
fresh_db "$work/n1m" "$work/big.sqlite"
big_start=$(date +%s.%N)
mb=$(peak_mb "$bin" -q run --db "$work/big.sqlite" --out "$work/big-out" "$work/n1m/statement.xml" || true)
big=$(echo "$(date +%s.%N) - $big_start" | bc)
small=$(sort -n "$work/recon.times" | head -1)
echo "1M night: ${big} s, $(echo "$big / $small" | bc -l | xargs printf %.1f)x the 100k night (target: at most 11x), peak ${mb} MB (target: under 300)"
rm -rf "$work/n1m" "$work/big.sqlite"* "$work/big-out"

# A 20k night against 50k and against 2.5M open top-ups (2.45M of them long stale).
night "$work/n20k" 50000 20000 --seed 3 --created-at 2026-11-20T08:00:00Z
night "$work/stale" 2450000 1 --seed 4 --created-at 2026-06-01T08:00:00Z
fresh_db "$work/n20k" "$work/small.sqlite"
fresh_db "$work/n20k" "$work/large.sqlite"
import_start=$(date +%s.%N)
"$bin" -q topups import --db "$work/large.sqlite" "$work/stale/topups.csv" >/dev/null
import_secs=$(echo "$(date +%s.%N) - $import_start" | bc)
echo "topups import of 2.45M into a database holding 50k: $(echo "2450000 / $import_secs" | bc) rows/s"
rm -f "$work/imp2.sqlite"* && cp "$work/large.sqlite" "$work/imp2.sqlite"
night "$work/more" 120000 1 --seed 5 --created-at 2026-11-25T08:00:00Z
more=$(secs "$bin" -q topups import --db "$work/imp2.sqlite" "$work/more/topups.csv")
echo "topups import of 120k into a database holding 2.5M: $(echo "120000 / $more" | bc) rows/s (target: at least 100,000)"
rm -f "$work/imp2.sqlite"*
# The target is the second night: the first after an import lists every stale top-up once.
small=$(secs run "$work/small.sqlite" "$work/n20k" "$work/out")
large=$(secs run "$work/large.sqlite" "$work/n20k" "$work/out")
echo "first 20k night: ${small} s against 50k, ${large} s against 2.5M open top-ups (lists the 2.45M stale once)"
night "$work/second" 25000 20000 --seed 6 --created-at 2026-11-21T08:00:00Z
for db in small large; do
  "$bin" -q topups import --db "$work/$db.sqlite" "$work/second/topups.csv" >/dev/null
done
small=$(secs run "$work/small.sqlite" "$work/second" "$work/out")
large=$(secs run "$work/large.sqlite" "$work/second" "$work/out")
echo "second 20k night: ${small} s against 75k, ${large} s against 2.5M open top-ups, $(echo "$large / $small" | bc -l | xargs printf %.2f)x (target: within 1.5x)"
rm -rf "$work/stale" "$work/second" "$work/small.sqlite"* "$work/large.sqlite"*

# The 100k night after 30 earlier nights of 100k (3M transactions of history).
fresh_db "$work/n100k" "$work/hist.sqlite"
for i in $(seq 1 30); do
  # Each earlier night books on a day of its own before the measured night's 2026-11-21, as a
  # bank's statements do (the same day every night would scatter the day-ordered keys).
  night "$work/earlier" 120000 100000 --seed $((100 + i)) --created-at "2026-10-01T08:00:00Z" \
    --booked-on "$(date -u -d "2026-10-21 + $i days" +%F)"
  "$bin" -q topups import --db "$work/hist.sqlite" "$work/earlier/topups.csv" >/dev/null
  run "$work/hist.sqlite" "$work/earlier" "$work/out" >/dev/null || true
done
rm -rf "$work/earlier"
fresh_db "$work/n100k" "$work/fresh.sqlite"
fresh=$(secs run "$work/fresh.sqlite" "$work/n100k" "$work/out")
history=$(secs run "$work/hist.sqlite" "$work/n100k" "$work/out")
echo "100k night after 3M transactions of history: ${history} s against ${fresh} s on a fresh database, $(echo "$history / $fresh" | bc -l | xargs printf %.2f)x (target: within 1.3x); database $(($(size "$work/hist.sqlite") / 1000000)) MB"
