-- ARGV: ttl, terms... -> {doc count, total length, pending work (a flat HGETALL of
-- ``pending``: searches ignore the postings of its doc ids), then the older and the
-- newest postings of each term}. A search reads the user's index, so it keeps the
-- user's data alive like any read.
local stats = redis.call('HMGET', meta, 'docs', 'length')
if not stats[1] then return {0, 0, {}} end
local hidden = {}
if redis.call('HLEN', pending) > 0 then hidden = redis.call('HGETALL', pending) end
local found = {stats[1], stats[2], hidden}
for i = 2, #ARGV do
  found[#found + 1] = redis.call('HGET', terms, ARGV[i]) or ''
  found[#found + 1] = redis.call('HGET', terms, ARGV[i] .. '\t') or ''
end
expire_keys(tonumber(ARGV[1]))
return found
