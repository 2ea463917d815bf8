--[[ unrevoke.lua — undo a revocation: take it out of the index every
replica resyncs from, and tell every replica now (tollgate, docs/redis.md §1).

KEYS     the four keys of revoke.lua (tg:{revlog}:j, :s, :si, :sx)
ARGV     kind ("j", "s" every issuer, "i" one issuer), id (jti, sub, or
         iss "\x1f" sub), channel, lifetime (as revoke.lua's)
Publishes "<KIND> <when> <id>" ("J", "S" or "I": the kind in capitals, the
`when` that was in force) when there was a live entry; old replicas ignore
these messages (they keep the entry until they restart).
Returns the `when` removed, or 0 when there was no live entry (an expired
one is removed all the same).  The caller deletes the per-token key.
]]

if redis.replicate_commands then
    redis.replicate_commands()
end

local kind, id, channel = ARGV[1], ARGV[2], ARGV[3]
local lifetime = tonumber(ARGV[4] or '0')
if (kind ~= 'j' and kind ~= 's' and kind ~= 'i') or not id or id == '' or not lifetime or
    lifetime < 0 then
    return redis.error_reply("ERR tollgate unrevoke: bad arguments")
end
local t = redis.call('TIME')
local now = tonumber(t[1])
local when, live
if kind == 'j' then
    when = tonumber(redis.call('ZSCORE', KEYS[1], id))
    redis.call('ZREM', KEYS[1], id)
    live = when and when > now
else
    local h = kind == 's' and KEYS[2] or KEYS[3]
    when = tonumber(redis.call('HGET', h, id))
    redis.call('HDEL', h, id)
    redis.call('ZREM', KEYS[4], kind == 's' and ('\31' .. id) or id)
    live = when and (lifetime == 0 or when + lifetime > now)
end
if not live then
    return 0
end
if channel and channel ~= '' then
    redis.call('PUBLISH', channel,
               string.upper(kind) .. ' ' .. string.format('%d', when) .. ' ' .. id)
end
return when
