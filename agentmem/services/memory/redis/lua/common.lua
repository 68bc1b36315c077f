-- Shared by every script of RedisMemoryService. The user's keys are already in named
-- locals (meta, docs, order, by_session, terms, vectors, vocab, session_ids,
-- message_ids, pending, doc_terms); see keys.py for what each holds.

local TAIL_LIMIT = 4096
local MAX_DOC_ID = 2 ^ 30 - 1
-- Pending work (see keys.py) that has not progressed for this long is abandoned: its
-- writer or remover stopped, and the next writer of the user finishes or undoes it.
local STALE_MS = 60000
local BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local DIGIT = {}
for at = 1, 64 do DIGIT[string.byte(BASE64, at)] = at - 1 end
-- An index entry: doc id, length, session, position, terms, created_at, metadata.
local ENTRY_HEAD = '^(%d+)\t(%d+)\t([^\t]*)\t(%d+)\t([^\t]*)\t'
-- A member of by_session: session, position, doc id, message id.
local MEMBER = '^([^:]*):(%d+):(%d+):(.*)$'

-- The last ``width`` base64 digits of ``value``, most significant first.
local function base64_digits(value, width)
  local digits = {}
  for at = width, 1, -1 do
    local digit = value % 64
    digits[at] = string.sub(BASE64, digit + 1, digit + 1)
    value = (value - digit) / 64
  end
  return table.concat(digits)
end

-- The doc id of the posting that starts at byte ``at`` of ``postings``.
local function posting_id(postings, at)
  local a, b, c, d, e = string.byte(postings, at, at + 4)
  return (((DIGIT[a] * 64 + DIGIT[b]) * 64 + DIGIT[c]) * 64 + DIGIT[d]) * 64 + DIGIT[e]
end

-- The byte at which the first posting of a doc id >= ``id`` starts (#postings + 1 if
-- none): postings are in doc id order, so a binary search finds it.
local function posting_at(postings, id)
  local low, high = 0, #postings / 8
  while low < high do
    local middle = math.floor((low + high) / 2)
    if posting_id(postings, middle * 8 + 1) < id then low = middle + 1 else high = middle end
  end
  return low * 8 + 1
end

-- Postings are read for all the terms of a script at once (one HMGET per 1,000 fields)
-- and written the same way, by flush_postings(): a command costs about 1 µs, more than
-- the work on one term's postings.
local term_sets, term_dels, vocab_dels = {}, {}, {}

local function set_postings(field, postings)
  if postings == '' then
    term_dels[#term_dels + 1] = field
  else
    term_sets[#term_sets + 1] = field
    term_sets[#term_sets + 1] = postings
  end
end

local function flush_postings()
  call_chunked('HSET', terms, term_sets)
  call_chunked('HDEL', terms, term_dels)
  call_chunked('HDEL', vocab, vocab_dels)
  term_sets, term_dels, vocab_dels = {}, {}, {}
end

-- The stored postings of each of ``names`` (field names of ``terms``), '' for none.
local function read_postings(names)
  local found = call_chunked('HMGET', terms, names)
  for i = 1, #names do found[i] = found[i] or '' end
  return found
end

-- The sorted terms of a table keyed by term, and the names of their newest postings.
local function terms_of(keyed)
  local names, tails = {}, {}
  for term in pairs(keyed) do names[#names + 1] = term end
  table.sort(names)
  for i, term in ipairs(names) do tails[i] = term .. '\t' end
  return names, tails
end

-- Sets the newest postings of terms; those grown past TAIL_LIMIT join their older
-- postings (``older[term]`` when read already).
local function set_tails(tails, older)
  local unread = {}
  for term, tail in pairs(tails) do
    if #tail < TAIL_LIMIT then
      set_postings(term .. '\t', tail)
    elseif older[term] == nil then
      unread[#unread + 1] = term
    end
  end
  table.sort(unread)
  for i, stored in ipairs(read_postings(unread)) do older[unread[i]] = stored end
  for term, tail in pairs(tails) do
    if #tail >= TAIL_LIMIT then
      set_postings(term, older[term] .. tail)
      set_postings(term .. '\t', '')
    end
  end
end

-- Appends to terms postings of doc ids above all they hold (the write of one script):
-- ``added`` maps term -> postings.
local function append_postings(added)
  local names, tails = terms_of(added)
  local grown = {}
  for i, stored in ipairs(read_postings(tails)) do grown[names[i]] = stored .. added[names[i]] end
  set_tails(grown, {})
end

-- Adds ``blocks[term]``, postings of doc ids up to ``highs[term]`` of one write in steps,
-- to each term where they belong in doc id order: before those of writes that reserved
-- their ids later but finished first. A re-sent step finds them there and adds nothing.
local function insert_postings(blocks, highs)
  local names, tails = terms_of(blocks)
  local newest, grown, inner = {}, {}, {}
  for i, tail in ipairs(read_postings(tails)) do
    local term = names[i]
    local high = highs[term]
    if tail ~= '' and posting_id(tail, 1) <= high then
      local at = posting_at(tail, high + 1)
      if posting_id(tail, at - 8) ~= high then
        grown[term] = string.sub(tail, 1, at - 1) .. blocks[term] .. string.sub(tail, at)
      end
    else
      newest[term] = tail
      inner[#inner + 1] = term
    end
  end
  -- Terms whose newest postings are all above the block: it goes before them.
  local older = {}
  for i, stored_older in ipairs(read_postings(inner)) do
    local term = inner[i]
    local high = highs[term]
    older[term] = stored_older
    local at = posting_at(stored_older, high + 1)
    if at == 1 or posting_id(stored_older, at - 8) ~= high then
      if at <= #stored_older then
        set_postings(term, string.sub(stored_older, 1, at - 1) .. blocks[term]
          .. string.sub(stored_older, at))
      else
        grown[term] = blocks[term] .. newest[term]
      end
    end
  end
  set_tails(grown, older)
end

-- ``postings`` without those of the doc ids gone[first..last] (ascending).
local function without(postings, gone, first, last)
  local kept, from = {}, 1
  for i = first, last do
    local at = posting_at(postings, gone[i])
    if at <= #postings and posting_id(postings, at) == gone[i] then
      kept[#kept + 1] = string.sub(postings, from, at - 1)
      from = at + 8
    end
  end
  kept[#kept + 1] = string.sub(postings, from)
  return table.concat(kept)
end

-- Deletes from each term of ``gone`` (term -> ascending doc ids) the postings of those
-- ids, and the term's vocabulary vector with its last posting. A term's older postings
-- are read only when some id is older than its newest ones, or none of these is left.
local function remove_postings(gone)
  local names, tails = terms_of(gone)
  local splits, left, inner = {}, {}, {}
  for i, tail in ipairs(read_postings(tails)) do
    local term = names[i]
    local ids = gone[term]
    local split = #ids + 1
    if tail ~= '' then
      local newest = posting_id(tail, 1)
      for j = 1, #ids do
        if ids[j] >= newest then split = j; break end
      end
    end
    if split <= #ids then
      tail = without(tail, ids, split, #ids)
      set_postings(term .. '\t', tail)
    end
    splits[term], left[term] = split, tail
    if split > 1 or tail == '' then inner[#inner + 1] = term end
  end
  for i, older in ipairs(read_postings(inner)) do
    local term = inner[i]
    if splits[term] > 1 then
      older = without(older, gone[term], 1, splits[term] - 1)
      set_postings(term, older)
    end
    if older == '' and left[term] == '' then vocab_dels[#vocab_dels + 1] = term end
  end
end

-- The index entries (order members) of the memories of a set of ids, by id; ids of no
-- memory are left out. One range read per run of consecutive ids: a memory's neighbours
-- mostly have consecutive ids.
local function entries_of(wanted)
  local ids, found, first = {}, {}, 1
  for id in pairs(wanted) do ids[#ids + 1] = tonumber(id) end
  table.sort(ids)
  for i = 1, #ids do
    if i == #ids or ids[i + 1] ~= ids[i] + 1 then
      for _, entry in ipairs(redis.call('ZRANGEBYSCORE', order, ids[first], ids[i])) do
        found[string.match(entry, '^%d+')] = entry
      end
      first = i + 1
    end
  end
  return found
end

-- Where the user's data stands: {epoch, removal count, next_id}, ahead of every reply a
-- search keeps in its process (see search_cache.py).
local function data_version()
  local state = redis.call('HMGET', meta, 'epoch', 'removed', 'next_id')
  return {state[1] or '', state[2] or '0', state[3] or '0'}
end

-- The lexical range of a session's members of by_session.
local function session_range(session)
  return '[' .. session .. ':', '(' .. session .. ';'
end

-- The position after the last of a session's memories (0 for none).
local function next_position(session)
  local low, high = session_range(session)
  local last = redis.call('ZREVRANGEBYLEX', by_session, high, low, 'LIMIT', 0, 1)[1]
  if not last then return 0 end
  local _, position = string.match(last, MEMBER)
  return tonumber(position) + 1
end

local function register_session(session)
  if not redis.call('ZSCORE', session_ids, session) then
    redis.call('ZADD', session_ids, redis.call('HINCRBY', meta, 'sessions', 1), session)
  end
end

-- The by_session member of a memory.
local function member_of(session, position, id, message_id)
  return session .. ':' .. string.format('%012d', position) .. ':' .. id .. ':' .. message_id
end

-- The doc ids of members of by_session.
local function ids_of(members)
  local ids = {}
  for i, member in ipairs(members) do ids[i] = string.match(member, '^[^:]*:%d+:(%d+)') end
  return ids
end

-- Whether the write in steps ``token`` is still pending; records its progress if so.
local function continue_write(token)
  local record = redis.call('HGET', pending, 'w:' .. token)
  if not record then return false end
  local now = now_ms()
  local reserved = string.match(record, '^(%d+ %d+ %d*) ')
  redis.call('HSET', pending, 'w:' .. token, reserved .. string.format(' %d', now))
  redis.call('HSET', meta, 'work_at', now)
  return true
end

-- Records progress of pending work, so it does not count as abandoned.
local function progressed()
  redis.call('HSET', meta, 'work_at', now_ms())
end

-- How many removed memories still have postings to purge.
local function purging()
  return tonumber(redis.call('HGET', meta, 'purging') or '0')
end

-- 1 when pending work has not progressed for STALE_MS (see STALE_MS), else 0.
local function stale_work()
  if redis.call('HLEN', pending) == 0 then return 0 end
  local at = tonumber(redis.call('HGET', meta, 'work_at') or '0')
  if now_ms() - at > STALE_MS then return 1 end
  return 0
end

-- Unlinks all of the user's keys once no memory and no pending work is left.
local function drop_if_empty()
  if tonumber(redis.call('HGET', meta, 'docs') or '0') <= 0
      and redis.call('HLEN', pending) == 0 then
    unlink_keys(KEYS)
  end
end

-- Removes the memories of the by_session ``members`` (of one or more sessions) from
-- every structure but session_ids (the callers update it). Their postings go at once
-- when their terms number at most ``budget``; otherwise the memories are queued in
-- ``pending`` (searches ignore their postings from now on) for the purge script.
local function remove_members(members, budget)
  if #members == 0 then return end
  local wanted, claims = {}, {}
  for i, member in ipairs(members) do
    local session, _, id, message_id = string.match(member, MEMBER)
    wanted[id] = true
    claims[i] = session .. ':' .. message_id
  end
  call_chunked('SREM', message_ids, claims)
  call_chunked('ZREM', by_session, members)
  local entries, held, ids, length, count, in_steps = {}, {}, {}, 0, 0, false
  for id, raw in pairs(entries_of(wanted)) do
    local _, size, _, _, terms_of = string.match(raw, ENTRY_HEAD)
    length = length + tonumber(size)
    entries[#entries + 1] = raw
    ids[#ids + 1] = id
    held[id] = terms_of
    if string.sub(terms_of, 1, 1) == '+' then
      in_steps = true
    else
      count = count + select(2, string.gsub(terms_of, '%S+', ''))
    end
  end
  if in_steps or count > budget then
    local chunks, purged = {}, {}
    for _, id in ipairs(ids) do
      if string.sub(held[id], 1, 1) ~= '+' and held[id] ~= '' then
        chunks[#chunks + 1] = id .. ':0'
        chunks[#chunks + 1] = held[id]
      end
      purged[#purged + 1] = 'p:' .. id
      purged[#purged + 1] = '0'
    end
    call_chunked('HSET', doc_terms, chunks)
    call_chunked('HSET', pending, purged)
    redis.call('HINCRBY', meta, 'purging', #ids)
    progressed()
  else
    local gone = {}
    for _, id in ipairs(ids) do
      local number = tonumber(id)
      for term in string.gmatch(held[id], '%S+') do
        local list = gone[term]
        if not list then list = {}; gone[term] = list end
        list[#list + 1] = number
      end
    end
    for _, list in pairs(gone) do table.sort(list) end
    remove_postings(gone)
    flush_postings()
  end
  call_chunked('HDEL', docs, ids)
  call_chunked('HDEL', vectors, ids)
  call_chunked('ZREM', order, entries)
  -- Subtracted from 0, because Lua's -0 reaches Redis as "-0", which is no integer.
  redis.call('HINCRBY', meta, 'docs', 0 - #entries)
  redis.call('HINCRBY', meta, 'length', 0 - length)
  redis.call('HINCRBY', meta, 'removed', 1)
  drop_if_empty()
end

-- Keeps the newest ``limit`` memories of a session (0: all); see remove_members.
local function keep_newest(session, limit, budget)
  if limit == 0 then return end
  local low, high = session_range(session)
  local excess = redis.call('ZLEXCOUNT', by_session, low, high) - limit
  if excess > 0 then
    remove_members(redis.call('ZRANGEBYLEX', by_session, low, high, 'LIMIT', 0, excess), budget)
  end
end
