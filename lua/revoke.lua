--[[ revoke.lua — record a revocation in the index every replica resyncs
from, and tell every replica now (tollgate, docs/redis.md §1).

KEYS[1]  tg:{revlog}:j  sorted set: member jti, score exp (unix s)
KEYS[2]  tg:{revlog}:s  hash: sub -> before (unix s)
ARGV     kind ("j" or "s"), id (jti or sub), when (exp or before), channel
A subject's `before` only ever grows.  Expired jti members are dropped.
Publishes "<kind> <when> <id>" on the channel.  Returns the `when` in force.
The per-token keys of docs/redis.md §1 (tg:{rev:<jti>}, tg:{revsub:<sub>}) live in
other slots and are written by the caller next to this call.
]]

if redis.replicate_commands then
    redis.replicate_commands()
end

local kind, id, channel = ARGV[1], ARGV[2], ARGV[4]
local when = tonumber(ARGV[3])
if (kind ~= 'j' and kind ~= 's') or not id or id == '' or not when or when < 1 then
    return redis.error_reply("ERR tollgate revoke: bad arguments")
end
local t = redis.call('TIME')
local now = tonumber(t[1])
if kind == 'j' then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    local cur = tonumber(redis.call('ZSCORE', KEYS[1], id))
    if cur and cur > when then
        when = cur
    end
    redis.call('ZADD', KEYS[1], when, id)
else
    local cur = tonumber(redis.call('HGET', KEYS[2], id))
    if cur and cur > when then
        when = cur
    end
    redis.call('HSET', KEYS[2], id, when)
end
if channel and channel ~= '' then
    redis.call('PUBLISH', channel, kind .. ' ' .. string.format('%d', when) .. ' ' .. id)
end
return when
