--[[ ban.lua — ban or unban a target for every replica (tollgate).

KEYS[1]  <prefix>{bans}, a hash: target -> "<until_ms> <created_ms> <actor> <reason>"
         (targets are canonical: ip:ADDR, cidr:NET/LEN, client:ID; actor and
         reason were checked by the caller: no control bytes, no space in actor)
ARGV     "b", target, duration_ms, actor, reason, max_entries, channel (may be "")
         "u", target, channel
"b"  drops the entries that are over, refuses a new target while max_entries
     live ones are held (error "ERR tollgate ban: full"), stores the ban,
     publishes "b <target> <until_ms> <created_ms> <actor> <reason>" and
     returns {until_ms, created_ms}.
"u"  removes the target; when it was in force publishes "u <target>" and
     returns 1, else 0.
The key expires when its last ban ends.  Time: redis TIME (ms).
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

-- drop what is over; count what is live
local all = redis.call('HGETALL', KEYS[1])
local live, last, held = 0, 0, false
for i = 1, #all, 2 do
    local u = until_of(all[i + 1])
    if u <= now then
        redis.call('HDEL', KEYS[1], all[i])
    else
        live = live + 1
        if u > last then
            last = u
        end
        if all[i] == target then
            held = true
        end
    end
end
if not held and live >= max then
    return redis.error_reply("ERR tollgate ban: full")
end

local until_ms = now + duration
local value = string.format('%d %d ', until_ms, now) .. actor .. ' ' .. reason
redis.call('HSET', KEYS[1], target, value)
if until_ms > last then
    last = until_ms
end
redis.call('PEXPIREAT', KEYS[1], last + 1000)
if channel ~= "" then
    redis.call('PUBLISH', channel, 'b ' .. target .. ' ' .. value)
end
return {until_ms, now}
