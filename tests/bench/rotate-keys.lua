-- wrk script: every request carries the next of N API keys (one per line in
-- the file given after `--`), so the bench exercises key lookup and one
-- bucket per client rather than a single hot bucket.
--   wrk -s rotate-keys.lua URL -- KEYS_FILE
local keys = {}
local i = 0

function init(args)
    local path = args[1] or error("usage: wrk -s rotate-keys.lua URL -- KEYS_FILE")
    for line in io.lines(path) do
        if #line > 0 then keys[#keys + 1] = line end
    end
    assert(#keys > 0, "no keys in " .. path)
    -- start each wrk thread at a different key
    i = math.random(#keys)
end

function request()
    i = i % #keys + 1
    -- a line "Bearer TOKEN" is sent as Authorization (the JWT rows)
    if keys[i]:sub(1, 7) == "Bearer " then
        return wrk.format(nil, nil, { ["Authorization"] = keys[i] })
    end
    return wrk.format(nil, nil, { ["X-API-Key"] = keys[i] })
end
