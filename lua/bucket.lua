--[[ bucket.lua — all-or-nothing token buckets over every KEY (tollgate).

The same integer fixed-point maths as include/tollgate/rl_bucket.h.  A rate
"n tokens per period_ms" with capacity `burst` keeps its level in units of
1/period_ms token: one token = period_ms units, one millisecond adds n units,
capacity = burst * period_ms.  Every value stays an integer below 2^53
(burst <= 1e7, period_ms <= 1 day), so Lua's doubles are exact, and every
division below is of integers below 2^53, so floor()/ceil() of it is exact.

KEYS[1..K]   the buckets, all in one hash slot (the caller puts one {hash tag}
             in every key: tg:{<identity>}:b:<limit>).  Each is a hash:
               tokens  the level, tokens * period_ms (an integer)
               ts      ms since the epoch at which `tokens` was true
             A missing key, a missing or non-numeric field, or a key of another
             type is a full bucket.  A level above capacity is capped.
ARGV[1]      cost: tokens asked of every bucket, 0 <= cost <= 1e7
             (0 peeks: decides, charges and writes nothing)
ARGV[2+4*(i-1) ..] for KEYS[i], four integers:
               n          tokens per period, 1 .. 2^32-1
               period_ms  1 .. 86400000
               burst      capacity in tokens, 1 .. 1e7
               mode       0 = enforce, 1 = shadow

Time is redis.call('TIME') in ms (floor).  Refill: level += (now - ts) * n,
capped at capacity; a clock that went backwards adds nothing and `ts` stays
where it was.  Then, with need = cost * period_ms:
  - a bucket fits when level >= need;
  - the request is allowed when every *enforce* bucket fits (shadow buckets
    are decided but never block);
  - if allowed, every bucket that fits is charged (level -= need) and written
    (HSET tokens, ts; PEXPIRE full-refill time + EXPIRE_MARGIN_MS); if denied,
    nothing is charged or written.

Returns an array of 2 + 4*K integers:
  [1] allowed         1 / 0 (the whole request)
  [2] retry_after_ms  0 when allowed; else the largest retry_after_ms of the
                      enforce buckets that do not fit
  then for KEYS[i], at 3+4*(i-1):
      fits            1 / 0: this bucket alone had `cost` tokens (also for
                      shadow buckets, and for buckets left uncharged because
                      another bucket denied)
      remaining       floor(level / period_ms), after this request
      reset_ms        ceil((capacity - level) / n): until full again
      retry_after_ms  0 when fits, else ceil((need - level) / n)
                      (when cost > burst the cost never fits; the value is
                      then only the time until level reaches need)
Bad KEYS/ARGV give an error reply "ERR tollgate bucket: ...".

Dry run (rl_request_t.dry_run): ARGV[1] = 'D' and the arguments above from
ARGV[2] on.  Decided exactly as above (same TIME, same reply, `remaining`
as if charged when allowed) but nothing is written: no HSET, no PEXPIRE, no
DEL of a key of another type, and a missing key stays missing.

Batch form (several independent requests in one call, limiter/rl_redis.c):
ARGV[1] = 'B', ARGV[2] = R (1 .. 1000), then for each request j in order:
an optional 'D' (this request is a dry run), k_j, its cost, and 4 * k_j
rate arguments as above; KEYS are the requests' keys one after another (sum
of k_j).  The requests are decided in order at one TIME, each
all-or-nothing over its own buckets exactly as a call of its own would be
(a bucket named by two requests sees the first one's charge; a dry request
charges nothing, so the next one sees the level it saw), and the reply is
an array of R replies of the form above.  A bad layout refuses the whole
batch.

Redis 7 replicates a script by its effects (HSET, PEXPIRE), so TIME is
allowed; redis.replicate_commands() makes Redis 3.2 - 4 do the same.
]]

local MAX_BURST = 10000000
local MAX_PERIOD_MS = 86400000
local MAX_N = 4294967295
local MAX_SAFE = 9007199254740991 -- 2^53 - 1
local EXPIRE_MARGIN_MS = 1000

if redis.replicate_commands then
    redis.replicate_commands()
end

local floor, ceil = math.floor, math.ceil

-- ARGV[i] as an integer in [lo, hi], or nil.
local function int_arg(i, lo, hi)
    local v = tonumber(ARGV[i])
    if v == nil or v ~= v or v < lo or v > hi or v ~= floor(v) then
        return nil
    end
    return v
end

-- A stored field as a non-negative integer, or nil when corrupt.
local function stored_int(s)
    local v = tonumber(s)
    if v == nil or v ~= v or v < 0 or v > MAX_SAFE then
        return nil
    end
    return floor(v)
end

local function bad(what)
    return redis.error_reply('ERR tollgate bucket: ' .. what)
end

-- Decide one request over KEYS[k0 + 1 .. k0 + nkeys] with its cost in
-- ARGV[a0] and four rate arguments per key from ARGV[a0 + 1], at `now`;
-- `dry`: decide the same, write nothing.
-- Returns the reply array, or an error reply.
local function decide(k0, nkeys, a0, now, dry)
    local cost = int_arg(a0, 0, MAX_BURST)
    if cost == nil then
        return bad('bad cost')
    end

    -- Pass 1: load, refill, decide.  Per key i, st[6i-5 .. 6i] holds
    -- n, period, cap, level, ts, and whether the key held another type.
    -- (Flat tables: a script call allocates little, and the GC stays quiet.)
    local st = {}
    local allowed, retry = true, 0

    for i = 1, nkeys do
        local a = a0 + 4 * i - 3
        local n = int_arg(a, 1, MAX_N)
        local period = int_arg(a + 1, 1, MAX_PERIOD_MS)
        local burst = int_arg(a + 2, 1, MAX_BURST)
        local mode = ARGV[a + 3]
        if n == nil or period == nil or burst == nil or (mode ~= '0' and mode ~= '1') then
            return bad('bad rate for key ' .. i)
        end
        local cap = burst * period

        -- Load: anything unreadable is a full bucket as of now.
        local lv, at
        local h = redis.pcall('HMGET', KEYS[k0 + i], 'tokens', 'ts')
        local wrongtype = h.err ~= nil
        if not wrongtype then
            lv, at = stored_int(h[1]), stored_int(h[2])
        end
        if lv == nil or at == nil then
            lv, at = cap, now
        elseif lv > cap then
            lv = cap
        end

        -- Refill, exactly: elapsed * n only when it stays below the deficit.
        if now > at then
            local deficit = cap - lv
            if deficit > 0 then
                if now - at >= ceil(deficit / n) then
                    lv = cap
                else
                    lv = lv + (now - at) * n
                end
            end
            at = now
        end

        local need = cost * period
        if lv < need and mode == '0' then
            allowed = false
            local r = ceil((need - lv) / n)
            if r > retry then
                retry = r
            end
        end
        local o = 6 * i - 5
        st[o], st[o + 1], st[o + 2], st[o + 3], st[o + 4], st[o + 5] =
            n, period, cap, lv, at, wrongtype
    end

    -- Pass 2: charge (only when allowed) and build the reply.
    local out = {allowed and 1 or 0, retry, 0, 0, 0, 0}
    for i = 1, nkeys do
        local o = 6 * i - 5
        local n, period, cap, lv = st[o], st[o + 1], st[o + 2], st[o + 3]
        local need = cost * period
        local fits = lv >= need
        local key = KEYS[k0 + i]
        if allowed and fits and cost > 0 then
            lv = lv - need
            if not dry then
                if st[o + 5] then
                    redis.call('DEL', key)
                end
                redis.call('HSET', key, 'tokens', lv, 'ts', st[o + 4])
                redis.call('PEXPIRE', key, ceil((cap - lv) / n) + EXPIRE_MARGIN_MS)
            end
        end
        local r = 4 * i - 1
        out[r] = fits and 1 or 0
        out[r + 1] = floor(lv / period)
        out[r + 2] = ceil((cap - lv) / n)
        out[r + 3] = fits and 0 or ceil((need - lv) / n)
    end
    return out
end

local function clock()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end

local nkeys = #KEYS
if nkeys == 0 then
    return bad('no KEYS')
end

-- Batch: ARGV = 'B', R, then per request: ['D'], k, cost, 4*k rate
-- arguments; KEYS are the requests' keys one after another.  Decided in
-- order (a bucket named twice sees the first request's charge), each
-- all-or-nothing; a 'D' request writes nothing.
if ARGV[1] == 'B' then
    local nreq = int_arg(2, 1, 1000)
    if nreq == nil then
        return bad('bad batch size')
    end
    local a, k = 3, 0
    for _ = 1, nreq do
        if ARGV[a] == 'D' then
            a = a + 1
        end
        local kj = int_arg(a, 1, nkeys)
        if kj == nil or k + kj > nkeys or a + 1 + 4 * kj > #ARGV then
            return bad('bad batch layout')
        end
        k, a = k + kj, a + 2 + 4 * kj
    end
    if k ~= nkeys or a - 1 ~= #ARGV then
        return bad('bad batch layout')
    end
    local now = clock()
    local replies = {}
    a, k = 3, 0
    for j = 1, nreq do
        local dry = ARGV[a] == 'D'
        if dry then
            a = a + 1
        end
        local kj = tonumber(ARGV[a])
        local r = decide(k, kj, a + 1, now, dry)
        if r.err ~= nil then
            return r
        end
        replies[j] = r
        k, a = k + kj, a + 2 + 4 * kj
    end
    return replies
end

if ARGV[1] == 'D' then
    if #ARGV ~= 2 + 4 * nkeys then
        return bad('want 2 + 4 * #KEYS ARGV')
    end
    return decide(0, nkeys, 2, clock(), true)
end
if #ARGV ~= 1 + 4 * nkeys then
    return bad('want 1 + 4 * #KEYS ARGV')
end
return decide(0, nkeys, 1, clock(), false)
