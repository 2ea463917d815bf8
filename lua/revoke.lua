--[[ revoke.lua — record a revocation in the index every replica resyncs
from, and tell every replica now (tollgate, docs/redis.md §1).

KEYS[1]  tg:{revlog}:j   sorted set: member jti, score exp (unix s)
KEYS[2]  tg:{revlog}:s   hash: sub -> before (unix s), every issuer
KEYS[3]  tg:{revlog}:si  hash: iss .. "\x1f" .. sub -> before, one issuer
KEYS[4]  tg:{revlog}:sx  sorted set: iss .. "\x1f" .. sub (iss "" for every
                         issuer), score before: which subject entries expire
ARGV     kind ("j", "s" every issuer, "i" one issuer), id (jti, sub, or
         iss "\x1f" sub), when (exp or before), channel, lifetime (s a
         subject revocation lasts past before; 0: for ever)
A subject's `before` only ever grows.  Expired jti members are dropped, and
up to 100 subject entries whose before + lifetime has passed.
Publishes "<kind> <when> <id>" on the channel.  Returns the `when` in force.
The per-token keys of docs/redis.md §1 (tg:{rev:<jti>}, tg:{revsub:<sub>})
live in other slots and are written by the caller next to this call.
Old replicas (before issue 22) know only "j" and "s" and KEYS[1..2]: an "i"
entry is in a hash they never read and a message they ignore.
]]

if redis.replicate_commands then
    redis.replicate_commands()
end

local kind, id, channel = ARGV[1], ARGV[2], ARGV[4]
local when, lifetime = tonumber(ARGV[3]), tonumber(ARGV[5] or '0')
if (kind ~= 'j' and kind ~= 's' and kind ~= 'i') or not id or id == '' or not when or
    when < 1 or not lifetime or lifetime < 0 then
    return redis.error_reply("ERR tollgate revoke: bad arguments")
end
local t = redis.call('TIME')
local now = tonumber(t[1])

-- Forget up to 100 subject entries that no longer match a valid token.
local function trim()
    if lifetime == 0 then
        return
    end
    local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - lifetime, 'LIMIT', 0, 100)
    for _, m in ipairs(old) do
        if string.sub(m, 1, 1) == '\31' then
            redis.call('HDEL', KEYS[2], string.sub(m, 2))
        else
            redis.call('HDEL', KEYS[3], m)
        end
        redis.call('ZREM', KEYS[4], m)
    end
end

if kind == 'j' then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    local cur = tonumber(redis.call('ZSCORE', KEYS[1], id))
    if cur and cur > when then
        when = cur
    end
    redis.call('ZADD', KEYS[1], when, id)
else
    local h = kind == 's' and KEYS[2] or KEYS[3]
    local cur = tonumber(redis.call('HGET', h, id))
    if cur and cur > when then
        when = cur
    end
    redis.call('HSET', h, id, when)
    redis.call('ZADD', KEYS[4], when, kind == 's' and ('\31' .. id) or id)
    trim()
end
if channel and channel ~= '' then
    redis.call('PUBLISH', channel, kind .. ' ' .. string.format('%d', when) .. ' ' .. id)
end
return when
