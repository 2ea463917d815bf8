--[[ top.lua — one limit's top lists of every replica (tollgate; docs/redis.md,
include/tollgate/rl_topk.h, server/top.c).

KEYS[1]  tg:{top}:NAME:lists   hash: field instance id, value its encoded lists
KEYS[2]  tg:{top}:NAME:until   sorted set: member instance id, score the time
         (Redis TIME, unix ms) until which its lists count
ARGV[1]  "pub": ARGV[2] the caller's instance id (1..64 bytes), ARGV[3] ttl_ms
         (1..600000), ARGV[4] its lists (at most 65536 bytes); returns the
         number of replicas whose lists count
         "get": returns {id1, lists1, id2, lists2, ...} of the replicas whose
         lists count (at most 1000)

Both keys share one hash tag ({top}): one slot in a cluster.  Lists whose
time has passed are dropped first, so a dead replica fades after ttl_ms; both
keys expire ttl_ms after the last publication of any replica.
]]

if redis.replicate_commands then
    redis.replicate_commands()
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #dead > 0 then
    redis.call('HDEL', KEYS[1], unpack(dead))
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end

if ARGV[1] == 'pub' then
    local id, ttl, lists = ARGV[2], tonumber(ARGV[3]), ARGV[4]
    if not id or #id < 1 or #id > 64 or not ttl or ttl < 1 or ttl > 600000 or
        ttl % 1 ~= 0 or not lists or #lists > 65536 then
        return redis.error_reply("ERR tollgate top: bad arguments")
    end
    redis.call('HSET', KEYS[1], id, lists)
    redis.call('ZADD', KEYS[2], now + ttl, id)
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
    return redis.call('ZCARD', KEYS[2])
elseif ARGV[1] == 'get' then
    local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'LIMIT', 0, 1000)
    local out = {}
    for _, id in ipairs(ids) do
        local v = redis.call('HGET', KEYS[1], id)
        if v then
            out[#out + 1] = id
            out[#out + 1] = v
        end
    end
    return out
end
return redis.error_reply("ERR tollgate top: bad arguments")
