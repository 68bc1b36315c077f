-- ARGV: ttl, the epoch and removal count of the caller's cached postings ('' and '' for
-- none), then per term: the term and the next_id up to which the caller holds its
-- postings (-1 for none).
-- Returns {epoch, removed, next_id (see data_version), doc count, total length, pending
-- work (a flat HGETALL of ``pending``: searches ignore the postings of its doc ids), then
-- per term: the doc id above which its postings follow (0: all of them; the caller's
-- next_id when its epoch and removal count are current, so it gets only what was added
-- since), then those of its older and of its newest postings}. A user without data
-- gets the version only, then {0, 0, {}}. A search reads the user's index, so it keeps
-- the user's data alive like any read.
local found = data_version()
local stats = redis.call('HMGET', meta, 'docs', 'length')
if not stats[1] then
  found[4], found[5], found[6] = 0, 0, {}
  return found
end
local hidden = {}
if redis.call('HLEN', pending) > 0 then hidden = redis.call('HGETALL', pending) end
found[4], found[5], found[6] = stats[1], stats[2], hidden
local next_id = tonumber(found[3])
local current = found[1] ~= '' and found[1] == ARGV[2] and found[2] == ARGV[3]
for i = 4, #ARGV, 2 do
  local term, since = ARGV[i], tonumber(ARGV[i + 1])
  if not current or since < 0 or since > next_id then since = 0 end
  local older, newest = '', ''
  if since == 0 then
    older = redis.call('HGET', terms, term) or ''
    newest = redis.call('HGET', terms, term .. '\t') or ''
  elseif since < next_id then
    -- Doc ids only grow from the older postings to the newest: those above ``since``
    -- are all in the newest unless its first is above ``since`` too.
    newest = redis.call('HGET', terms, term .. '\t') or ''
    if newest ~= '' and posting_id(newest, 1) <= since then
      newest = string.sub(newest, posting_at(newest, since + 1))
    else
      older = redis.call('HGET', terms, term) or ''
      older = string.sub(older, posting_at(older, since + 1))
    end
  end
  found[#found + 1] = since
  found[#found + 1] = older
  found[#found + 1] = newest
end
expire_keys(tonumber(ARGV[1]))
return found
