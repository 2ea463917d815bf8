--[[ fleet.lua — one replica's heartbeat in the fleet roster, and the number
of replicas alive (tollgate; docs/redis.md, include/tollgate/rl_fleet.h).

KEYS[1]  tg:{fleet}:replicas  sorted set: member instance id, score the time
         (Redis TIME, unix ms) until which that replica counts as alive
ARGV[1]  the caller's instance id (1..64 bytes)
ARGV[2]  ttl_ms: 1..600000 renews the caller for ttl_ms; 0 removes it (leave)

Time is Redis's own (TIME), so the replicas' clocks never matter.  Members
whose time has passed are dropped first; the key expires ttl_ms after the
last heartbeat of any replica, so an abandoned roster goes away by itself.
Returns the number of replicas alive after the change.
]]

if redis.replicate_commands then
    redis.replicate_commands()
end

local id, ttl = ARGV[1], tonumber(ARGV[2])
if not id or #id < 1 or #id > 64 or not ttl or ttl < 0 or ttl > 600000 or ttl % 1 ~= 0 then
    return redis.error_reply("ERR tollgate fleet: bad arguments")
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ttl == 0 then
    redis.call('ZREM', KEYS[1], id)
else
    redis.call('ZADD', KEYS[1], now + ttl, id)
    redis.call('PEXPIRE', KEYS[1], ttl)
end
return redis.call('ZCARD', KEYS[1])
