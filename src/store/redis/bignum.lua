-- Exact unsigned integers for Redis Lua (Lua 5.1: every number is a double).
--
-- A number is an array of limbs in base 2^24, least significant first, with no zero limb
-- above the first. Every intermediate value below stays under 2^53 (a limb product is under
-- 2^48, plus a carry under 2^29), so every operation is exact integer arithmetic. Doubles
-- are used in one place only: to guess a quotient digit in `divmod`, and the guess is then
-- corrected by exact comparison.

local BASE = 16777216 -- 2^24

local function trim(a)
  local n = #a
  while n > 1 and a[n] == 0 do
    a[n] = nil
    n = n - 1
  end
  return a
end

-- x: an integer double in [0, 2^53).
local function from_small(x)
  local a = {}
  repeat
    local r = x % BASE
    a[#a + 1] = r
    x = (x - r) / BASE
  until x == 0
  return a
end

local function cmp(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  for i = #a, 1, -1 do
    if a[i] ~= b[i] then
      return a[i] < b[i] and -1 or 1
    end
  end
  return 0
end

local function add(a, b)
  local r, carry = {}, 0
  for i = 1, math.max(#a, #b) do
    local s = (a[i] or 0) + (b[i] or 0) + carry
    if s >= BASE then
      r[i] = s - BASE
      carry = 1
    else
      r[i] = s
      carry = 0
    end
  end
  if carry > 0 then
    r[#r + 1] = carry
  end
  return r
end

-- a - b, for a >= b.
local function sub(a, b)
  local r, borrow = {}, 0
  for i = 1, #a do
    local s = a[i] - (b[i] or 0) - borrow
    if s < 0 then
      r[i] = s + BASE
      borrow = 1
    else
      r[i] = s
      borrow = 0
    end
  end
  return trim(r)
end

-- a * s, for an integer s in [0, 2^28].
local function mul_small(a, s)
  local r, carry = {}, 0
  for i = 1, #a do
    local p = a[i] * s + carry
    local lo = p % BASE
    r[i] = lo
    carry = (p - lo) / BASE
  end
  while carry > 0 do
    local lo = carry % BASE
    r[#r + 1] = lo
    carry = (carry - lo) / BASE
  end
  return trim(r)
end

local function mul(a, b)
  local r = {}
  for i = 1, #a + #b do
    r[i] = 0
  end
  for i = 1, #a do
    local carry, ai = 0, a[i]
    for j = 1, #b do
      local p = r[i + j - 1] + ai * b[j] + carry
      local lo = p % BASE
      r[i + j - 1] = lo
      carry = (p - lo) / BASE
    end
    local k = i + #b
    while carry > 0 do
      local p = r[k] + carry
      local lo = p % BASE
      r[k] = lo
      carry = (p - lo) / BASE
      k = k + 1
    end
  end
  return trim(r)
end

-- An approximation of a as a double (only ever used to guess a quotient digit).
local function approx(a)
  local v = 0
  for i = #a, 1, -1 do
    v = v * BASE + a[i]
  end
  return v
end

-- (floor(a / d), a mod d), for d > 0. Schoolbook division one limb at a time: the remainder
-- stays below d, so each quotient digit is below BASE; its guess from doubles is off by at
-- most one either way and is corrected exactly.
local function divmod(a, d)
  if #d == 1 then
    -- A one-limb divisor: short division, every step exact (r * BASE + limb < 2^48).
    local q, r, dv = {}, 0, d[1]
    for i = #a, 1, -1 do
      local x = r * BASE + a[i]
      -- The rounded quotient can be one too high (or low) near an integer: fix it exactly.
      local digit = math.floor(x / dv)
      r = x - digit * dv
      if r < 0 then
        digit = digit - 1
        r = r + dv
      elseif r >= dv then
        digit = digit + 1
        r = r - dv
      end
      q[i] = digit
    end
    return trim(q), { r }
  end
  local q, r = {}, { 0 }
  local dv = approx(d)
  for i = #a, 1, -1 do
    -- r = r * BASE + a[i]
    table.insert(r, 1, a[i])
    trim(r)
    local digit = 0
    if cmp(r, d) >= 0 then
      digit = math.floor(approx(r) / dv)
      if digit >= BASE then
        digit = BASE - 1
      end
      local p = mul_small(d, digit)
      while cmp(p, r) > 0 do
        digit = digit - 1
        p = sub(p, d)
      end
      r = sub(r, p)
      while cmp(r, d) >= 0 do
        digit = digit + 1
        r = sub(r, d)
      end
    end
    q[i] = digit
  end
  if #q == 0 then
    q[1] = 0
  end
  return trim(q), r
end

-- 2^k as a number.
local function pow2(k)
  local a = {}
  local whole = math.floor(k / 24)
  for i = 1, whole do
    a[i] = 0
  end
  a[whole + 1] = 2 ^ (k - 24 * whole)
  return a
end

-- a * 2^k.
local function shl(a, k)
  local whole = math.floor(k / 24)
  local r = mul_small(a, 2 ^ (k - 24 * whole))
  if not (#r == 1 and r[1] == 0) then
    for _ = 1, whole do
      table.insert(r, 1, 0)
    end
  end
  return r
end

-- (floor(a / 2^k), a mod 2^k), by moving bits: no division.
local function split(a, k)
  local whole = math.floor(k / 24)
  local m = 2 ^ (k - 24 * whole)
  local low = {}
  for i = 1, whole do
    low[i] = a[i] or 0
  end
  low[whole + 1] = (a[whole + 1] or 0) % m
  local high = {}
  for i = whole + 1, #a do
    -- The top bits of this limb and the bottom bits of the next: together below 2^24.
    high[#high + 1] = math.floor(a[i] / m) + ((a[i + 1] or 0) % m) * (BASE / m)
  end
  if #high == 0 then
    high[1] = 0
  end
  return trim(high), trim(low)
end

-- A decimal string of at most 20 digits, or nil if it is not one.
local function parse(s)
  if type(s) ~= 'string' or #s == 0 or #s > 20 or not string.match(s, '^%d+$') then
    return nil
  end
  if #s <= 15 then
    return from_small(tonumber(s)) -- below 10^15 < 2^53: exact as a double
  end
  -- The first 1 to 6 digits times 10^14, plus the last 14 digits.
  local high = from_small(tonumber(string.sub(s, 1, #s - 14)))
  local low = from_small(tonumber(string.sub(s, -14)))
  return trim(add(mul_small(mul_small(high, 10000000), 10000000), low))
end

local SEVEN_DIGITS = { 10000000 }

local function format(a)
  local parts = {}
  repeat
    local q, r = divmod(a, SEVEN_DIGITS)
    parts[#parts + 1] = r[1]
    a = q
  until #a == 1 and a[1] == 0
  local s = tostring(parts[#parts])
  for i = #parts - 1, 1, -1 do
    s = s .. string.format('%07d', parts[i])
  end
  return s
end

local function is_zero(a)
  return #a == 1 and a[1] == 0
end

local function max(a, b)
  return cmp(a, b) >= 0 and a or b
end
