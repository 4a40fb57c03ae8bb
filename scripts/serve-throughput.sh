#!/usr/bin/env bash
# Throughput of `nanolimit serve`, beside redis-server in the same run with the same client
# settings:
#   - redis-benchmark: CL.THROTTLE on nanolimit (in memory, and with --store on the same
#     redis-server), a GCRA Lua script on redis-server through EVALSHA (the usual way to rate
#     limit in Redis without a module), and PING on both (the protocol floor);
#   - wrk: POST /v1/check on nanolimit's HTTP side.
# Each case runs plain (-P 1) and pipelined (-P 16), 50 connections, 1,000 random keys.
#
# The two cores are split: the server under test is pinned to CPU 0 (taskset), the client
# to CPU 1, so that neither steals the other's core. (`--store` runs nanolimit and
# redis-server both on CPU 0.)
#
# Usage: scripts/serve-throughput.sh [REQUESTS]   (default 200000 per redis-benchmark case)
# Needs: redis-server, redis-benchmark (redis-tools), wrk, taskset; builds the release binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${1:-200000}
CLIENTS=50
KEYS=1000
WRK_SECONDS=10

cargo build -q --release -p nanolimit-cli --bin nanolimit
BIN=${CARGO_TARGET_DIR:-target}/release/nanolimit

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
taskset -c 0 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
NL_PORT=$(free_port)
HTTP_PORT=$(free_port)
taskset -c 0 "$BIN" serve --resp "127.0.0.1:$NL_PORT" --http "127.0.0.1:$HTTP_PORT" \
    --log-level warn >"$WORK/nl.log" 2>&1 &
PIDS+=($!)
STORE_PORT=$(free_port)
taskset -c 0 "$BIN" serve --resp "127.0.0.1:$STORE_PORT" --http off --log-level warn \
    --store "redis://127.0.0.1:$REDIS_PORT" --store-timeout 2s >"$WORK/store.log" 2>&1 &
PIDS+=($!)
for port in "$REDIS_PORT" "$NL_PORT" "$STORE_PORT"; do
    for _ in $(seq 100); do
        redis-cli -p "$port" PING >/dev/null 2>&1 && break
        sleep 0.05
    done
done

# GCRA as it is usually written in Lua: the theoretical arrival time as a float of
# milliseconds, time from TIME; the reply has redis-cell's five integers.
SCRIPT='
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local burst = tonumber(ARGV[1]) + 1
local interval = tonumber(ARGV[3]) * 1000 / tonumber(ARGV[2])
local quantity = tonumber(ARGV[4] or "1")
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + quantity * interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {1, burst, 0, math.ceil((allow_at - now) / 1000), math.ceil((tat - now) / 1000)}
end
redis.call("SET", KEYS[1], new_tat, "PX", math.ceil(new_tat - now))
return {0, burst, math.floor((now - allow_at) / interval), -1, math.ceil((new_tat - now) / 1000)}
'
SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$SCRIPT")

# requests per second of one redis-benchmark case; fails on any error reply.
bench() {
    local port=$1 pipeline=$2
    shift 2
    local out
    out=$(taskset -c 1 redis-benchmark -p "$port" -c "$CLIENTS" -n "$N" -P "$pipeline" \
        -r "$KEYS" -q "$@" 2>&1 | tr '\r' '\n' | grep -v '^ *$' | tail -1)
    if grep -qi error <<<"$out" || ! grep -q 'requests per second' <<<"$out"; then
        echo "redis-benchmark failed: $out" >&2
        exit 1
    fi
    sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' <<<"$out"
}

# CL.THROTTLE's quota: max_burst 100, 1,000,000 per second (nearly every call admitted, so
# nearly every call writes).
QUOTA=(100 1000000 1)
printf '%s\n' "date: $(date -u +%Y-%m-%d), $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"
printf '%s\n' "redis-benchmark -c $CLIENTS -n $N -r $KEYS; server on CPU 0, client on CPU 1"
printf '%-52s %14s %14s\n' case "-P 1 (req/s)" "-P 16 (req/s)"
row() {
    local name=$1 port=$2
    shift 2
    printf '%-52s %14s %14s\n' "$name" "$(bench "$port" 1 "$@")" "$(bench "$port" 16 "$@")"
}
row "redis-server PING" "$REDIS_PORT" PING
row "nanolimit serve PING" "$NL_PORT" PING
row "nanolimit serve CL.THROTTLE (memory)" "$NL_PORT" CL.THROTTLE 'k:__rand_int__' "${QUOTA[@]}"
row "redis-server EVALSHA GCRA script" "$REDIS_PORT" EVALSHA "$SHA" 1 'k:__rand_int__' "${QUOTA[@]}"
row "nanolimit serve --store redis CL.THROTTLE" "$STORE_PORT" CL.THROTTLE 's:__rand_int__' "${QUOTA[@]}"

# wrk: POST /v1/check on the built-in `default` policy, 1,000 keys.
cat >"$WORK/check.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"policy":"default","key":"k%d"}', n % 1000)
  return wrk.format("POST", "/v1/check", {["Content-Type"] = "application/json"}, body)
end
LUA
out=$(taskset -c 1 wrk -t 1 -c "$CLIENTS" -d "${WRK_SECONDS}s" -s "$WORK/check.lua" \
    "http://127.0.0.1:$HTTP_PORT/v1/check")
rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
printf '%-52s %14s\n' "wrk -t 1 -c $CLIENTS POST /v1/check (HTTP/1.1 keep-alive)" "$rps"
[[ -z $errors ]] || echo "wrk: $errors"
