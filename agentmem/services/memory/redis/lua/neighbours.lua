-- ARGV: radius, doc ids... -> {epoch, removed, next_id (see data_version), then one
-- string per memory (few reply elements parse faster)}: "=<neighbour ids,
-- comma-separated>\n<index entry>" for each existing id asked for whose neighbours are
-- all there ("+" instead of "=" while memories added to its session may still join
-- them), then "-\n<index entry>" for each neighbour, whose entry the ranking reads next.
local radius, found, asked, near_ids = tonumber(ARGV[1]), data_version(), {}, {}
for i = 2, #ARGV do asked[ARGV[i]] = true end
local entries = entries_of(asked)
for i = 2, #ARGV do
  local raw = entries[ARGV[i]]
  if raw then
    local _, _, session, position = string.match(raw, ENTRY_HEAD)
    position = tonumber(position)
    local low = '[' .. session .. ':' .. string.format('%012d', math.max(position - radius, 0))
    local high = '(' .. session .. ':' .. string.format('%012d', position + radius + 1)
    local members = redis.call('ZRANGEBYLEX', by_session, low, high)
    local near = {}
    for _, id in ipairs(ids_of(members)) do
      if id ~= ARGV[i] then
        near[#near + 1] = id
        if not asked[id] then near_ids[id] = true end
      end
    end
    -- A session grows only at its end: once it holds the last position in reach, no
    -- memory can join the neighbours before a removal.
    local closed, last = '+', members[#members]
    if last then
      local _, reached = string.match(last, MEMBER)
      if tonumber(reached) >= position + radius then closed = '=' end
    end
    found[#found + 1] = closed .. table.concat(near, ',') .. '\n' .. raw
  end
end
for _, raw in pairs(entries_of(near_ids)) do found[#found + 1] = '-\n' .. raw end
return found
