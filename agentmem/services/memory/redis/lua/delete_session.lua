-- Deletes one session's memories. ARGV: session.
local low, high = session_range(ARGV[1])
local members = redis.call('ZRANGEBYLEX', by_session, low, high)
redis.call('ZREMRANGEBYLEX', by_session, low, high)
redis.call('ZREM', session_ids, ARGV[1])
remove_docs(ids_of(members))
return #members
