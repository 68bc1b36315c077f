-- ARGV: ttl -> the user's sessions (encoded ids) in the order first used.
local found = redis.call('ZRANGE', session_ids, 0, -1)
if #found > 0 then expire_keys(tonumber(ARGV[1])) end
return found
