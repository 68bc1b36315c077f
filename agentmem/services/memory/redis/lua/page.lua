-- One page of memories in order. ARGV: ttl, offset, count, session ('': all sessions).
-- Returns the index entry of each memory; the caller reads the messages with a plain
-- HMGET, which, unlike this script, does not copy them into Lua.
local ttl_ms, offset, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local session = ARGV[4]
local entries
if session == '' then
  entries = redis.call('ZRANGE', order, offset, offset + count - 1)
else
  local low, high = session_range(session)
  local size = redis.call('ZLEXCOUNT', by_session, low, high)
  if offset >= size then return {} end
  local start = redis.call('ZLEXCOUNT', by_session, '-', '(' .. session .. ':') + offset
  local stop = start + math.min(count, size - offset) - 1
  local ids, wanted = ids_of(redis.call('ZRANGE', by_session, start, stop)), {}
  for _, id in ipairs(ids) do wanted[id] = true end
  local found = entries_of(wanted)
  entries = {}
  for _, id in ipairs(ids) do
    if found[id] then entries[#entries + 1] = found[id] end
  end
end
if #entries == 0 then return {} end
expire_keys(ttl_ms)
return entries
