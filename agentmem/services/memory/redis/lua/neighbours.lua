-- ARGV: radius, doc ids... -> one string per memory (few reply elements parse faster):
-- "<neighbour ids, comma-separated>\n<index entry>" for each existing id asked for, then
-- "-\n<index entry>" for each neighbour, whose entry the ranking reads next.
local radius, found, asked, near_ids = tonumber(ARGV[1]), {}, {}, {}
for i = 2, #ARGV do asked[ARGV[i]] = true end
local entries = entries_of(asked)
for i = 2, #ARGV do
  local raw = entries[ARGV[i]]
  if raw then
    local _, _, session, position = string.match(raw, ENTRY_HEAD)
    position = tonumber(position)
    local low = '[' .. session .. ':' .. string.format('%012d', math.max(position - radius, 0))
    local high = '(' .. session .. ':' .. string.format('%012d', position + radius + 1)
    local near = {}
    for _, id in ipairs(ids_of(redis.call('ZRANGEBYLEX', by_session, low, high))) do
      if id ~= ARGV[i] then
        near[#near + 1] = id
        if not asked[id] then near_ids[id] = true end
      end
    end
    found[#found + 1] = table.concat(near, ',') .. '\n' .. raw
  end
end
for _, raw in pairs(entries_of(near_ids)) do found[#found + 1] = '-\n' .. raw end
return found
