-- Starts a write in steps (a large batch: see writes.py): reserves doc ids for the
-- memories whose message ids the session does not hold yet. Nothing is visible until
-- "commit"; searches ignore the postings of the reserved ids until then.
-- ARGV: ttl, session, write token, epoch, count, message ids...
-- Returns {first reserved doc id (0: nothing to store), flags: per message 1 if new}.
-- A re-sent begin returns the reservation of the first.
local ttl_ms, session, token, n = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[5])
local record = redis.call('HGET', pending, 'w:' .. token)
if record then
  local first, _, flags = string.match(record, '^(%d+) (%d+) (%d*) ')
  return {tonumber(first), flags}
end
local claims, flags, count = {}, {}, 0
for i = 1, n do claims[i] = session .. ':' .. ARGV[5 + i] end
for i, held in ipairs(call_chunked('SMISMEMBER', message_ids, claims)) do
  flags[i] = held == 1 and '0' or '1'
  if held == 0 then count = count + 1 end
end
flags = table.concat(flags)
if count == 0 then return {0, flags} end
if tonumber(redis.call('HGET', meta, 'next_id') or '0') + count > MAX_DOC_ID then
  return redis.error_reply('doc ids of this user are exhausted (2^30 - 1 memories)')
end
redis.call('HSETNX', meta, 'epoch', ARGV[4])
local first = redis.call('HINCRBY', meta, 'next_id', count) - count + 1
redis.call('HSET', pending, 'w:' .. token,
  string.format('%d %d %s %d', first, count, flags, now_ms()))
progressed()
expire_keys(ttl_ms)
return {first, flags}
