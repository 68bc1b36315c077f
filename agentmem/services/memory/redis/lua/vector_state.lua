-- ARGV: the epoch, removed count and next_id of the caller's cached vectors ('', '', 0
-- for none) -> {'none'} for a user without data; {'full', epoch, removed, next_id,
-- vectors as id/vector pairs, vocabulary as term/vector pairs, pending work as a flat
-- HGETALL (the vectors of its writes are not visible yet)} when memories were removed,
-- a write in steps ended or the data was made anew; else {'delta', epoch, removed,
-- next_id, id / vector ('' for none) / terms of each memory added since}.
local state = redis.call('HMGET', meta, 'epoch', 'removed', 'next_id')
if not state[3] then return {'none'} end
local epoch, removed, next_id = state[1] or '', state[2] or '0', state[3]
if epoch == '' or epoch ~= ARGV[1] or removed ~= ARGV[2]
    or tonumber(next_id) < tonumber(ARGV[3]) then
  return {'full', epoch, removed, next_id, redis.call('HGETALL', vectors),
    redis.call('HGETALL', vocab), redis.call('HGETALL', pending)}
end
local added = {}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', order, '(' .. ARGV[3], '+inf')) do
  local id, _, _, _, held = string.match(entry, ENTRY_HEAD)
  if id then
    added[#added + 1] = id
    added[#added + 1] = redis.call('HGET', vectors, id) or ''
    added[#added + 1] = held
  end
end
return {'delta', epoch, removed, next_id, added}
