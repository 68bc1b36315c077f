-- Deletes one session's memories. ARGV: session, removal budget (see remove_members).
-- Returns {memories deleted, stale work flag, memories to purge} (see add.lua).
local low, high = session_range(ARGV[1])
local members = redis.call('ZRANGEBYLEX', by_session, low, high)
redis.call('ZREM', session_ids, ARGV[1])
remove_members(members, tonumber(ARGV[2]))
return {#members, stale_work(), purging()}
