-- Shared by every script of RedisMemoryService. The user's keys are already in named
-- locals (meta, docs, order, by_session, terms, vectors, vocab, session_ids); see
-- keys.py for what each holds.

local TAIL_LIMIT = 4096
local MAX_DOC_ID = 2 ^ 30 - 1
local BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
-- An index entry: doc id, length, session, position, terms, created_at, metadata.
local ENTRY_HEAD = '^(%d+)\t(%d+)\t([^\t]*)\t(%d+)\t([^\t]*)\t'

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

-- The lexical range of a session's members of by_session.
local function session_range(session)
  return '[' .. session .. ':', '(' .. session .. ';'
end

-- Removes memories from every structure but by_session and session_ids (the callers
-- update those); drops all of the user's keys when nothing is left.
local function remove_docs(ids)
  if #ids == 0 then return end
  local wanted, gone, length, entries = {}, {}, 0, {}
  for _, id in ipairs(ids) do wanted[id] = true end
  for id, raw in pairs(entries_of(wanted)) do
    local _, size, _, _, held = string.match(raw, ENTRY_HEAD)
    length = length + tonumber(size)
    entries[#entries + 1] = raw
    local digits = base64_digits(tonumber(id), 5)
    for term in string.gmatch(held, '%S+') do
      local set = gone[term]
      if not set then set = {}; gone[term] = set end
      set[digits] = true
    end
  end
  for term, set in pairs(gone) do
    local kept = {}
    local postings = (redis.call('HGET', terms, term) or '') ..
      (redis.call('HGET', terms, term .. '\t') or '')
    redis.call('HDEL', terms, term .. '\t')
    for at = 1, #postings, 8 do
      local posting = string.sub(postings, at, at + 7)
      if not set[string.sub(posting, 1, 5)] then kept[#kept + 1] = posting end
    end
    if #kept == 0 then
      redis.call('HDEL', terms, term)
      redis.call('HDEL', vocab, term)
    else
      redis.call('HSET', terms, term, table.concat(kept))
    end
  end
  call_chunked('HDEL', docs, ids)
  call_chunked('HDEL', vectors, ids)
  call_chunked('ZREM', order, entries)
  -- Subtracted from 0, because Lua's -0 reaches Redis as "-0", which is no integer.
  local left = redis.call('HINCRBY', meta, 'docs', 0 - #entries)
  redis.call('HINCRBY', meta, 'length', 0 - length)
  redis.call('HINCRBY', meta, 'removed', 1)
  if left <= 0 then redis.call('DEL', unpack(KEYS)) end
end

-- The doc ids of members of by_session.
local function ids_of(members)
  local ids = {}
  for i, member in ipairs(members) do ids[i] = string.match(member, '(%d+)$') end
  return ids
end

-- The doc ids of index entries.
local function ids_of_entries(entries)
  local ids = {}
  for i, entry in ipairs(entries) do ids[i] = string.match(entry, '^%d+') end
  return ids
end
