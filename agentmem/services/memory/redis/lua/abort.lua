-- Undoes a write in steps that stopped progressing (see STALE_MS): drops its messages
-- and vectors and queues its doc ids for purge. ARGV: write token.
-- Returns the queued doc ids ({} when the write is gone or still progressing).
local record = redis.call('HGET', pending, 'w:' .. ARGV[1])
if not record then return {} end
local first, count, _, at = string.match(record, '^(%d+) (%d+) (%d*) (%d+)$')
if now_ms() - tonumber(at) <= STALE_MS then return {} end
redis.call('HDEL', pending, 'w:' .. ARGV[1])
local queued = {}
for id = tonumber(first), tonumber(first) + tonumber(count) - 1 do
  local key = string.format('%d', id)
  redis.call('HDEL', docs, key)
  redis.call('HDEL', vectors, key)
  redis.call('HSET', pending, 'p:' .. key, '0')
  queued[#queued + 1] = key
end
redis.call('HINCRBY', meta, 'purging', #queued)
progressed()
return queued
