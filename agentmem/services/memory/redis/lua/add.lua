-- Stores a batch of memories of one session with their index entries and postings.
-- ARGV: ttl (ms, 0: none), max per session (0: none), session, count, epoch, then per
-- memory: message JSON, "<created_at>\t<metadata>", length, vector ('' if none), number
-- of terms, term/count pairs; then term/vector pairs for the vocabulary.
local ttl_ms, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local session, n = ARGV[3], tonumber(ARGV[4])
local low, high = session_range(session)
local last = redis.call('ZREVRANGEBYLEX', by_session, high, low, 'LIMIT', 0, 1)[1]
local position = 0
if last then position = tonumber(string.sub(last, #session + 2, #session + 13)) + 1 end
-- Checked before anything is written: a script that fails halfway keeps its writes.
if tonumber(redis.call('HGET', meta, 'next_id') or '0') + n > MAX_DOC_ID then
  return redis.error_reply('doc ids of this user are exhausted (2^30 - 1 memories)')
end
redis.call('HSETNX', meta, 'epoch', ARGV[5])
if not redis.call('ZSCORE', session_ids, session) then
  redis.call('ZADD', session_ids, redis.call('HINCRBY', meta, 'sessions', 1), session)
end
local first = redis.call('HINCRBY', meta, 'next_id', n) - n + 1
local added, total, at = {}, 0, 6
for i = 0, n - 1 do
  local id = string.format('%d', first + i)
  local message, tail, length, vector, count =
    ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], tonumber(ARGV[at + 4])
  at = at + 5
  local held, digits = {}, base64_digits(first + i, 5)
  for _ = 1, count do
    local term = ARGV[at]
    held[#held + 1] = term
    local postings = added[term]
    if not postings then postings = {}; added[term] = postings end
    postings[#postings + 1] = digits .. base64_digits(tonumber(ARGV[at + 1]), 3)
    at = at + 2
  end
  redis.call('HSET', docs, id, message)
  if vector ~= '' then redis.call('HSET', vectors, id, vector) end
  redis.call('ZADD', order, first + i, table.concat(
    {id, length, session, string.format('%d', position), table.concat(held, ' '), tail}, '\t'))
  redis.call('ZADD', by_session, 0,
    session .. ':' .. string.format('%012d', position) .. ':' .. id)
  position = position + 1
  total = total + tonumber(length)
end
for term, postings in pairs(added) do
  local recent = (redis.call('HGET', terms, term .. '\t') or '') .. table.concat(postings)
  if #recent < TAIL_LIMIT then
    redis.call('HSET', terms, term .. '\t', recent)
  else
    redis.call('HSET', terms, term, (redis.call('HGET', terms, term) or '') .. recent)
    redis.call('HDEL', terms, term .. '\t')
  end
end
-- A term's vector never changes while the term lives, so cached copies stay right.
for i = at, #ARGV, 2 do redis.call('HSETNX', vocab, ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', meta, 'docs', n)
redis.call('HINCRBY', meta, 'length', total)
if limit > 0 then
  local excess = redis.call('ZLEXCOUNT', by_session, low, high) - limit
  if excess > 0 then
    local oldest = redis.call('ZRANGEBYLEX', by_session, low, high, 'LIMIT', 0, excess)
    call_chunked('ZREM', by_session, oldest)
    remove_docs(ids_of(oldest))
  end
end
expire_keys(ttl_ms)
return n
