--[[ ban.lua — ban or unban a target for every replica (tollgate).

KEYS[1]  <prefix>{bans}, a hash: target -> "<until_ms> <created_ms> <actor> <reason>"
         (targets are canonical: ip:ADDR, cidr:NET/LEN, client:ID; actor and
         reason were checked by the caller: no control bytes, no space in actor)
KEYS[2]  <prefix>{bans}:until, a sorted set: target, score its until_ms — the
         index that lets a ban drop what is over without reading the hash
         (same slot: {bans})
ARGV     "b", target, duration_ms, actor, reason, max_entries, channel (may be "")
         "u", target, channel
"b"  drops up to TRIM entries that are over (more only when the hash is at
     max_entries: then every one, so "full" is never said of ended bans),
     refuses a new target while max_entries live ones are held (error
     "ERR tollgate ban: full"), stores the ban, publishes
     "b <target> <until_ms> <created_ms> <actor> <reason>" and returns
     {until_ms, created_ms}.  Its work is O(TRIM log n), not O(n): a fleet
     with 100,000 bans does not stall Redis on each new one.
"u"  removes the target; when it was in force publishes "u <target>" and
     returns 1, else 0.
Both keys expire a second after the last ban ends (never sooner than they
already would).  Time: redis TIME (ms).
A hash without its index (written by a replica of an earlier version,
which knew only KEYS[1]) is indexed whole once, by the first "b" that finds
the index missing; entries an earlier replica adds later are not indexed,
so they are dropped when the key expires or by that rebuild, never early.
]]

if redis.replicate_commands then
    redis.replicate_commands()
end

local op = ARGV[1]
local target = ARGV[2] or ""
if target == "" or string.find(target, '[%s%c]') then
    return redis.error_reply("ERR tollgate ban: bad arguments")
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function until_of(v)
    return tonumber(string.match(v or '', '^(%d+) ')) or 0
end

if op == "u" then
    local channel = ARGV[3] or ""
    local held = until_of(redis.call('HGET', KEYS[1], target)) > now
    redis.call('HDEL', KEYS[1], target)
    redis.call('ZREM', KEYS[2], target)
    if held and channel ~= "" then
        redis.call('PUBLISH', channel, 'u ' .. target)
    end
    return held and 1 or 0
end

local duration = tonumber(ARGV[3])
local actor = ARGV[4] or ""
local reason = ARGV[5] or ""
local max = tonumber(ARGV[6])
local channel = ARGV[7] or ""
if op ~= "b" or not duration or duration < 1 or not max or max < 1 or actor == ""
    or string.find(actor, '[%s%c]') or string.find(reason, '%c') then
    return redis.error_reply("ERR tollgate ban: bad arguments")
end

local TRIM = 64

-- the index, once, for a hash an earlier version wrote alone
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
    local all = redis.call('HGETALL', KEYS[1])
    for i = 1, #all, 2 do
        redis.call('ZADD', KEYS[2], until_of(all[i + 1]), all[i])
    end
end

-- drop what is over: a bounded batch, or all of it at the bound
local function trim(n)
    local over = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, n)
    for _, k in ipairs(over) do
        redis.call('HDEL', KEYS[1], k)
    end
    if #over > 0 then
        redis.call('ZREM', KEYS[2], unpack(over))
    end
    return #over
end
trim(TRIM)
local held = until_of(redis.call('HGET', KEYS[1], target)) > now
local live = redis.call('HLEN', KEYS[1])
if not held and live >= max then
    while trim(1000) > 0 do end
    live = redis.call('HLEN', KEYS[1])
end
if not held and live >= max then
    return redis.error_reply("ERR tollgate ban: full")
end

local until_ms = now + duration
local value = string.format('%d %d ', until_ms, now) .. actor .. ' ' .. reason
redis.call('HSET', KEYS[1], target, value)
redis.call('ZADD', KEYS[2], until_ms, target)
-- expire both keys a second after the last ban ends; only ever later (an
-- entry an earlier version wrote is not in the index, so the index's last
-- end may be sooner than the hash's)
local last = tonumber(redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]) or until_ms
for _, k in ipairs(KEYS) do
    local ttl = redis.call('PTTL', k)
    if ttl < 0 or now + ttl < last + 1000 then
        redis.call('PEXPIREAT', k, last + 1000)
    end
end
if channel ~= "" then
    redis.call('PUBLISH', channel, 'b ' .. target .. ' ' .. value)
end
return {until_ms, now}
