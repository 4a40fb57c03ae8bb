#!/usr/bin/env bash
# Lines per second of `nanolimit replay` on a large input: the shared 10,000-line access log
# repeated N times (default 200: 2,000,000 lines, 395,238,000 bytes), each copy shifted 4 days
# later than the one before so that time moves on as in one long log, written under target/
# (never into the repository), replayed through examples/replay/policies.toml by the release
# binary. With --decisions, each run also writes every decision to
# target/replay-throughput-decisions.jsonl (and the script prints its size).
# Needs python3 (to write the input once).
#
#   scripts/replay-throughput.sh [--decisions] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
decisions=()
if [ "${1:-}" = "--decisions" ]; then
    decisions=(--decisions target/replay-throughput-decisions.jsonl)
    shift
fi
n="${1:-200}"
log="../shared/data/access-2015.log"
big="target/replay-throughput-${n}x.log"
cargo build --release -q -p nanolimit-cli
if [ ! -s "$big" ]; then
    python3 - "$log" "$n" "$big.tmp" <<'PY'
import datetime, sys
src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(src, encoding="utf-8", errors="replace").read().splitlines()
parts = []
for line in lines:
    a = line.index("[") + 1
    b = line.index(" ", a)
    parts.append((line[:a], datetime.datetime.strptime(line[a:b], "%d/%b/%Y:%H:%M:%S"), line[b:]))
with open(out, "w", encoding="utf-8") as f:
    for k in range(n):
        shift = datetime.timedelta(days=4 * k)
        f.write("".join(f"{p}{(t + shift).strftime('%d/%b/%Y:%H:%M:%S')}{s}\n" for p, t, s in parts))
PY
    mv "$big.tmp" "$big"
fi
lines=$(wc -l < "$big")
for run in 1 2 3; do
    start=$(date +%s.%N)
    target/release/nanolimit replay --config examples/replay/policies.toml "${decisions[@]}" "$big" > /dev/null
    end=$(date +%s.%N)
    awk -v l="$lines" -v s="$start" -v e="$end" -v r="$run" \
        'BEGIN { printf "run %d: %d lines in %.3f s: %.0f lines/s\n", r, l, e - s, l / (e - s) }'
done
if [ ${#decisions[@]} -gt 0 ]; then
    echo "decisions: $(wc -c < target/replay-throughput-decisions.jsonl) bytes"
fi
