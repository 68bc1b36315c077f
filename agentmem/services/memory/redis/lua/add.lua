-- Stores a batch of memories of one session with their index entries and postings, in
-- one step (a small batch: see writes.py). A memory whose message id the session holds
-- already is skipped, so a re-sent or retried add stores nothing twice.
-- ARGV: ttl (ms, 0: none), max per session (0: none), session, count, epoch, removal
-- budget (see remove_members), then per memory: message id, message JSON,
-- "<created_at>\t<metadata>", length, vector ('' if none), number of terms, term/count
-- pairs; then term/vector pairs for the vocabulary.
-- Returns {memories stored, stale work flag (see stale_work), memories to purge (see
-- purging)}: a re-sent add replies what the first left to do.
local ttl_ms, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local session, n, budget = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[6])
local next_id = tonumber(redis.call('HGET', meta, 'next_id') or '0')
-- Checked before anything is written: a script that fails halfway keeps its writes.
if next_id + n > MAX_DOC_ID then
  return redis.error_reply('doc ids of this user are exhausted (2^30 - 1 memories)')
end
local position = next_position(session)
local added, total, stored, at = {}, 0, 0, 7
for _ = 1, n do
  local message_id, count = ARGV[at], tonumber(ARGV[at + 5])
  if redis.call('SADD', message_ids, session .. ':' .. message_id) == 1 then
    next_id = next_id + 1
    local id = string.format('%d', next_id)
    local held, digits = {}, base64_digits(next_id, 5)
    for term_at = at + 6, at + 4 + 2 * count, 2 do
      local term = ARGV[term_at]
      held[#held + 1] = term
      local postings = added[term]
      if not postings then postings = {}; added[term] = postings end
      postings[#postings + 1] = digits .. base64_digits(tonumber(ARGV[term_at + 1]), 3)
    end
    local length, vector = ARGV[at + 3], ARGV[at + 4]
    redis.call('HSET', docs, id, ARGV[at + 1])
    if vector ~= '' then redis.call('HSET', vectors, id, vector) end
    redis.call('ZADD', order, next_id, table.concat(
      {id, length, session, string.format('%d', position), table.concat(held, ' '),
        ARGV[at + 2]}, '\t'))
    redis.call('ZADD', by_session, 0, member_of(session, position, id, message_id))
    position = position + 1
    total = total + tonumber(length)
    stored = stored + 1
  end
  at = at + 6 + 2 * count
end
if stored > 0 then
  redis.call('HSETNX', meta, 'epoch', ARGV[5])
  redis.call('HSET', meta, 'next_id', string.format('%d', next_id))
  register_session(session)
  for term, postings in pairs(added) do added[term] = table.concat(postings) end
  append_postings(added)
  flush_postings()
  -- A term's vector never changes while the term lives, so cached copies stay right.
  for i = at, #ARGV, 2 do redis.call('HSETNX', vocab, ARGV[i], ARGV[i + 1]) end
  redis.call('HINCRBY', meta, 'docs', stored)
  redis.call('HINCRBY', meta, 'length', total)
end
keep_newest(session, limit, budget)
expire_keys(ttl_ms)
return {stored, stale_work(), purging()}
