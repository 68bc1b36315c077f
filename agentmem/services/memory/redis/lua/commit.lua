-- Ends a write in steps: makes its memories visible, all at once. A memory whose message
-- id the session came to hold meanwhile (a concurrent retry stored it) is dropped
-- instead and queued for purge.
-- ARGV: ttl, max per session (0: none), session, write token, removal budget, then per
-- new memory: doc id, message id, length, number of doc_terms chunks,
-- "<created_at>\t<metadata>".
-- Returns {-1} when the write is gone (as "stage"), else {memories stored, stale work
-- flag, memories to purge} (see add.lua).
local ttl_ms, limit, session = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local token, budget = ARGV[4], tonumber(ARGV[5])
if redis.call('HDEL', pending, 'w:' .. token) == 0 then return {-1} end
local claims = {}
for at = 6, #ARGV, 5 do claims[#claims + 1] = session .. ':' .. ARGV[at + 1] end
local held = call_chunked('SMISMEMBER', message_ids, claims)
local position, total, stored = next_position(session), 0, 0
local fresh, entries, members, dropped, purged = {}, {}, {}, {}, {}
for i, claim in ipairs(claims) do
  local at = 6 + 5 * (i - 1)
  local id, length = ARGV[at], ARGV[at + 2]
  if held[i] == 0 then
    fresh[#fresh + 1] = claim
    entries[#entries + 1] = id
    entries[#entries + 1] = table.concat(
      {id, length, session, string.format('%d', position), '+' .. ARGV[at + 3], ARGV[at + 4]},
      '\t')
    members[#members + 1] = 0
    members[#members + 1] = member_of(session, position, id, ARGV[at + 1])
    position = position + 1
    total = total + tonumber(length)
    stored = stored + 1
  else
    dropped[#dropped + 1] = id
    purged[#purged + 1] = 'p:' .. id
    purged[#purged + 1] = '0'
  end
end
call_chunked('SADD', message_ids, fresh)
call_chunked('ZADD', order, entries)
call_chunked('ZADD', by_session, members)
call_chunked('HDEL', docs, dropped)
call_chunked('HDEL', vectors, dropped)
call_chunked('HSET', pending, purged)
redis.call('HINCRBY', meta, 'purging', #dropped)
if stored > 0 then register_session(session) end
redis.call('HINCRBY', meta, 'docs', stored)
redis.call('HINCRBY', meta, 'length', total)
-- Cached vectors hold what was there when they were read; these ids are older than
-- that, so a change count makes readers read the vectors anew.
redis.call('HINCRBY', meta, 'removed', 1)
keep_newest(session, limit, budget)
progressed()
expire_keys(ttl_ms)
return {stored, stale_work(), purging()}
