#!/usr/bin/env bash
# Real clients against the built `nanolimit serve`: redis-cli (a scripted CL.THROTTLE sequence,
# every reply checked exactly), a short redis-benchmark run of CL.THROTTLE (plain and
# pipelined) that must finish without an error, and curl against the HTTP side.
#
# Needs: redis-cli and redis-benchmark (Debian's redis-tools), curl, and the `nanolimit` binary
# (built here with `cargo build -p nanolimit-cli` unless NANOLIMIT_BIN names one).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z ${NANOLIMIT_BIN:-} ]]; then
    cargo build -q -p nanolimit-cli --bin nanolimit
    NANOLIMIT_BIN=${CARGO_TARGET_DIR:-target}/debug/nanolimit
fi

WORK=$(mktemp -d)
SERVER=
cleanup() {
    [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# Port 0: the kernel picks free ports; the server prints the ones it got.
"$NANOLIMIT_BIN" serve --resp 127.0.0.1:0 --http 127.0.0.1:0 --log-level warn \
    >"$WORK/stdout" 2>"$WORK/stderr" &
SERVER=$!
for _ in $(seq 100); do
    grep -q 'Redis protocol on' "$WORK/stdout" && break
    sleep 0.05
done
RESP_PORT=$(sed -n 's/.*Redis protocol on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$WORK/stdout")
HTTP_PORT=$(sed -n 's/.*HTTP on http:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$WORK/stdout")
[[ -n $RESP_PORT && -n $HTTP_PORT ]] || { cat "$WORK/stdout" "$WORK/stderr" >&2; exit 1; }
echo "server: RESP on $RESP_PORT, HTTP on $HTTP_PORT"

failures=0
check() {
    local what=$1 expected=$2 actual=$3
    if [[ $actual == "$expected" ]]; then
        echo "ok: $what"
    else
        echo "FAILED: $what"
        diff <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") || true
        failures=$((failures + 1))
    fi
}

# max_burst 2 (limit 3), 1 per hour: three admissions, then limited for an hour. Seconds are
# rounded up, so the few milliseconds between calls never show.
actual=$(redis-cli -p "$RESP_PORT" <<'CMDS'
CL.THROTTLE user 2 1 3600
CL.THROTTLE user 2 1 3600
CL.THROTTLE user 2 1 3600
CL.THROTTLE user 2 1 3600
CL.THROTTLE user 2 1 3600 0
CL.THROTTLE other 2 1 3600 3
CL.THROTTLE user 2 1 3600 4
CL.THROTTLE user x 1 3600
CL.THROTTLE user 2 1 0
NL.CHECK default k
PING
CMDS
)
expected='0
3
2
-1
3600
0
3
1
-1
7200
0
3
0
-1
10800
1
3
0
3600
10800
0
3
0
-1
10800
0
3
0
-1
10800
ERR invalid quantity: 4 is more than the limit 3 (max_burst + 1) and can never be admitted

ERR invalid max_burst: '"'"'x'"'"' is not an integer

ERR invalid period: must be at least 1, not 0

1
10
9
-1
100
PONG'
check "redis-cli: CL.THROTTLE sequence" "$expected" "$actual"

# redis-benchmark: every reply must be a reply, not an error, plain and pipelined.
for pipeline in 1 16; do
    out=$(timeout 60 redis-benchmark -p "$RESP_PORT" -c 8 -n 20000 -P "$pipeline" -r 1000 -q \
        CL.THROTTLE 'bench:__rand_int__' 100 1000 1 2>&1) || { echo "$out"; failures=$((failures + 1)); continue; }
    out=$(tr '\r' '\n' <<<"$out" | grep -v '^ *$' | tail -1)
    if grep -qi 'error' <<<"$out" || ! grep -q 'requests per second' <<<"$out"; then
        echo "FAILED: redis-benchmark -P $pipeline: $out"
        failures=$((failures + 1))
    else
        echo "ok: redis-benchmark -P $pipeline: $out"
    fi
done

# curl against the HTTP side.
actual=$(curl -s -X POST "http://127.0.0.1:$HTTP_PORT/v1/check" \
    -d '{"policy":"default","key":"curl","cost":4}')
check "curl: POST /v1/check" \
    '{"allowed":true,"key":"curl","limit":10,"policy":"default","remaining":6,"reset_after_ms":400,"retry_after_ms":0}' \
    "$actual"
check "curl: unknown policy" '404' \
    "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$HTTP_PORT/v1/check" -d '{"policy":"x","key":"k"}')"

# SIGTERM: a clean exit.
kill -TERM "$SERVER"
status=0
wait "$SERVER" || status=$?
SERVER=
check "SIGTERM exits 0" 0 "$status"

if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all client checks passed"
