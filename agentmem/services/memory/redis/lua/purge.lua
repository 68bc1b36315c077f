-- A step of removals in steps: deletes postings of queued doc ids, one doc_terms chunk
-- after another, about ``budget`` terms in all (whole chunks).
-- ARGV: ttl, budget, doc ids... Returns the doc ids still queued.
local budget, gone, done, left = tonumber(ARGV[2]), {}, {}, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local cursor = redis.call('HGET', pending, 'p:' .. id)
  while cursor and budget > 0 do
    local field = id .. ':' .. cursor
    local chunk = redis.call('HGET', doc_terms, field)
    if not chunk then
      if redis.call('HDEL', pending, 'p:' .. id) == 1 then
        redis.call('HINCRBY', meta, 'purging', -1)
      end
      cursor = nil
    else
      for term in string.gmatch(chunk, '%S+') do
        local list = gone[term]
        if not list then list = {}; gone[term] = list end
        list[#list + 1] = tonumber(id)
        budget = budget - 1
      end
      done[#done + 1] = field
      cursor = string.format('%d', tonumber(cursor) + 1)
      redis.call('HSET', pending, 'p:' .. id, cursor)
    end
  end
  if cursor then left[#left + 1] = id end
end
for _, list in pairs(gone) do table.sort(list) end
remove_postings(gone)
flush_postings()
call_chunked('HDEL', doc_terms, done)
if redis.call('HLEN', pending) == 0 then redis.call('HDEL', meta, 'purging') end
progressed()
expire_keys(tonumber(ARGV[1]))
drop_if_empty()
return left
