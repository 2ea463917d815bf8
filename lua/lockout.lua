--[[ lockout.lua — count one failed authentication of a client (tollgate).

The rules of auth/lockout.c (docs/operator-guide.md §8), shared by every replica:
after `max_failures` failures within `window_ms`, the client is locked for a
backoff that starts at `base_ms` and doubles with every further lockout,
capped at `max_ms`.  Failures while locked still count.  A client quiet for
max(window, max backoff) since its last failure is forgotten (PEXPIRE).

KEYS[1]  tg:{lock:<ip>}, a hash:
           failures   failures in the current window
           start      ms: the window's first failure
           until      ms: locked until (0 = not locked)
           level      lockouts so far
ARGV     max_failures, window_ms, base_ms, max_ms, channel (may be "")
Returns  {locked_ms, level}: the lockout this failure started (0 = none).
When a lockout starts and a channel is given, publishes "l <until_ms> <ip>"
on it so every replica refuses the client at once.  Time: redis TIME (ms).
]]

if redis.replicate_commands then
    redis.replicate_commands()
end

local max_failures = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local channel = ARGV[5] or ""
if not max_failures or not window or not base or not cap or max_failures < 1 or window < 1
    or base < 1 or cap < base then
    return redis.error_reply("ERR tollgate lockout: bad arguments")
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'failures', 'start', 'until', 'level')
local failures = tonumber(h[1]) or 0
local start = tonumber(h[2]) or now
local locked_until = tonumber(h[3]) or 0
local level = tonumber(h[4]) or 0

if now - start >= window then
    failures = 0
    start = now
end
if failures == 0 then
    start = now
end
failures = failures + 1
local locked_ms = 0
if failures >= max_failures then
    level = level + 1
    local backoff = base
    for _ = 2, level do
        backoff = backoff * 2
        if backoff >= cap then
            break
        end
    end
    if backoff > cap then
        backoff = cap
    end
    locked_until = math.max(locked_until, now + backoff)
    locked_ms = locked_until - now
    failures = 0
end
redis.call('HSET', KEYS[1], 'failures', failures, 'start', start, 'until', locked_until,
    'level', level)
local keep = math.max(window, cap, locked_until - now)
redis.call('PEXPIRE', KEYS[1], keep + 1000)
if locked_ms > 0 and channel ~= "" then
    local ip = string.match(KEYS[1], '{lock:(.*)}') or ''
    redis.call('PUBLISH', channel, 'l ' .. string.format('%d', locked_until) .. ' ' .. ip)
end
return {locked_ms, level}
