-- ARGV: doc ids... -> {epoch, removed, next_id (see data_version), then the stored
-- message of each id, false (nil) for an id without one}. Through a script, not a plain
-- HMGET, for the version read with them; a search reads some ten messages, whose copy
-- into Lua costs little.
local found = data_version()
for _, message in ipairs(call_chunked('HMGET', docs, ARGV)) do found[#found + 1] = message end
return found
