-- A step of a write in steps: stores messages and vectors under their reserved doc ids
-- (invisible until "commit"). ARGV: ttl, write token, then doc id / message JSON / vector
-- ('' for none) triples. Returns 0 when the write is gone (its user's memories were
-- deleted, or it was abandoned and undone), else 1.
if not continue_write(ARGV[2]) then return 0 end
for i = 3, #ARGV, 3 do
  redis.call('HSET', docs, ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] ~= '' then redis.call('HSET', vectors, ARGV[i], ARGV[i + 2]) end
end
expire_keys(tonumber(ARGV[1]))
return 1
