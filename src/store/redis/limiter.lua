-- nanolimit: one rate-limit decision on one key, atomically (appended to bignum.lua).
--
-- A port of the library's pure transitions (src/algorithm/gcra.rs, token_bucket.rs) and of
-- its clock-to-tick conversion (src/ticks.rs), in the exact integers of bignum.lua. The
-- client derives the decision itself from the state and the time this script returns, with
-- the same Rust code as the in-memory limiter, and checks that the state written here is
-- the one that code computes.
--
-- KEYS[1]   the bucket's key; its value is the packed state as a decimal string
-- ARGV[1]   "check" or "peek"
-- ARGV[2]   "gcra" or "token-bucket"
-- ARGV[3]   the time in nanoseconds since the limiter's epoch, or "" for the server's TIME
-- ARGV[4]   the request's cost in ticks (cost * D)
-- ARGV[5]   the capacity in ticks (burst * D)
-- ARGV[6]   ticks per nanosecond, whole part (num / den: 0, 1 or 2)
-- ARGV[7]   ticks per nanosecond, fractional numerator (num mod den)
-- ARGV[8]   den (the period in nanoseconds)
-- ARGV[9]   num (D * rate)
-- ARGV[10]  the state of a new (full) bucket
-- ARGV[11]  token bucket: g, the timestamp unit is 2^g ticks (unused by GCRA)
-- ARGV[12]  milliseconds added to every expiry
-- ARGV[13]  the epoch: Unix seconds at which the server's TIME reads as 0 ns
--
-- Returns { time, seconds, microseconds, state before, state after or "", expiry in ms or "" }:
-- the explicit time as given and "", "" when there was one; otherwise "" and the server's
-- TIME, from which the client computes the same nanoseconds. All are decimal strings.

local function fail(what)
  return redis.error_reply('nanolimit: ' .. what)
end

-- Redis before 5 replicates scripts verbatim and refuses a write after TIME unless effects
-- replication is asked for; since 5 it is the default, and since 7 the call is a no-op.
if redis.replicate_commands then
  redis.replicate_commands()
end

local key = KEYS[1]
local op, algorithm = ARGV[1], ARGV[2]

-- The time, in nanoseconds.
local now
local time = { '', '' }
if ARGV[3] == '' then
  time = redis.call('TIME')
  local secs = tonumber(time[1]) - tonumber(ARGV[13])
  if secs < 0 then
    now = { 0 }
  else
    -- secs < 2^33 and the microseconds < 10^6: both products are exact.
    now = add(mul_small(mul_small(from_small(secs), 1000000), 1000), from_small(tonumber(time[2]) * 1000))
  end
else
  now = parse(ARGV[3])
  if not now then
    return fail('bad time argument')
  end
end

local stored = redis.call('GET', key)
local state
if stored then
  state = parse(stored)
  if not state or cmp(state, pow2(64)) >= 0 then
    return fail('key ' .. key .. ' does not hold a rate-limit state')
  end
else
  stored = ARGV[10]
  state = parse(stored)
end

local function reply(written, ttl)
  return { ARGV[3], time[1], time[2], stored, written, ttl }
end

if op == 'peek' then
  return reply('', '')
end

local need, capacity = parse(ARGV[4]), parse(ARGV[5])
local whole, frac, den, num = tonumber(ARGV[6]), parse(ARGV[7]), parse(ARGV[8]), parse(ARGV[9])
if not (need and capacity and whole and frac and den and num) then
  return fail('bad quota arguments')
end

-- Ticks at `now` (src/ticks.rs, TickScale::ticks_at): floor(min(now, 2^61) * num / den).
local lifetime = pow2(61)
local clamped = cmp(now, lifetime) > 0 and lifetime or now
local t = mul_small(clamped, whole)
if not is_zero(frac) then
  local q = divmod(mul(clamped, frac), den)
  t = add(t, q)
end

local next_state -- nil: nothing is written
local full       -- the tick at which the written state is full again

if is_zero(need) then
  next_state = nil
elseif algorithm == 'gcra' then
  -- Admitted iff debt + need <= capacity, with debt = max(TAT - t, 0).
  local debt = cmp(state, t) > 0 and sub(state, t) or { 0 }
  if cmp(add(debt, need), capacity) <= 0 then
    next_state = add(max(state, t), need)
    full = next_state
  end
elseif algorithm == 'token-bucket' then
  local g = tonumber(ARGV[11])
  local unit = pow2(g)
  local stamp, tokens = split(state, g + 1)
  local epoch = shl(stamp, g)
  -- credit = min(C, tokens - unit + (t - epoch)); kept unsigned: admitted iff
  -- tokens + t >= unit + epoch + need (the capacity is at least the cost).
  local gained, owed = add(tokens, t), add(unit, epoch)
  if cmp(gained, add(owed, need)) >= 0 then
    local credit = sub(gained, owed)
    if cmp(credit, capacity) > 0 then
      credit = capacity
    end
    local left = sub(credit, need)
    if cmp(t, epoch) >= 0 then
      -- Re-stamped at t: the stamp counts whole units, the rest of t is folded into tokens.
      local t_stamp, into_unit = split(t, g)
      next_state = add(shl(t_stamp, g + 1), sub(add(left, unit), into_unit))
      full = add(t, sub(capacity, left))
    else
      -- A stale time: the stamp is kept and the cost charged at the epoch.
      next_state = sub(state, need)
      full = add(epoch, sub(add(capacity, unit), sub(tokens, need)))
    end
  end
else
  return fail('unknown algorithm ' .. tostring(algorithm))
end

if not next_state then
  return reply('', '')
end

-- Expire when the bucket is full again: at ceil(full * den / num) ns (Ratio::nanos_at),
-- rounded up to whole milliseconds after now, plus the configured slack. A full bucket
-- decides exactly as a missing key does, so nothing is lost when the key goes.
local full_ns
if whole == 1 and is_zero(frac) then
  full_ns = full -- one tick is one nanosecond
else
  local rest
  full_ns, rest = divmod(mul(full, den), num)
  if not is_zero(rest) then
    full_ns = add(full_ns, { 1 })
  end
end
local ttl_ms = { 1 }
if cmp(full_ns, now) > 0 then
  local ms, sub_ms = divmod(sub(full_ns, now), { 1000000 })
  if not is_zero(sub_ms) then
    ms = add(ms, { 1 })
  end
  ttl_ms = max(ms, { 1 })
end
-- A bucket full only after the 2^61 ns lifetime never becomes full; its expiry is capped there.
local lifetime_ms = from_small(2305843009214)
if cmp(ttl_ms, lifetime_ms) > 0 then
  ttl_ms = lifetime_ms
end
ttl_ms = add(ttl_ms, parse(ARGV[12]) or { 0 })

-- At most 2^61 ns in ms plus the slack (both capped by the client): below 2^53, exact.
local written, ttl = format(next_state), string.format('%.0f', approx(ttl_ms))
redis.call('SET', key, written, 'PX', ttl)
return reply(written, ttl)
