-- A step of a write in steps: adds postings of reserved doc ids (which searches ignore
-- until "commit"), records the terms of each in doc_terms, and adds vocabulary vectors.
-- ARGV: ttl, write token, number of groups, then per group (in doc id order): doc id,
-- chunk number, number of terms, term/posting pairs; then term/vector pairs.
-- Returns 0 when the write is gone (as "stage"), else 1.
if not continue_write(ARGV[2]) then return 0 end
local blocks, highs, at = {}, {}, 4
for _ = 1, tonumber(ARGV[3]) do
  local id, count, held = tonumber(ARGV[at]), tonumber(ARGV[at + 2]), {}
  for term_at = at + 3, at + 1 + 2 * count, 2 do
    local term = ARGV[term_at]
    held[#held + 1] = term
    local block = blocks[term]
    if not block then block = {}; blocks[term] = block end
    block[#block + 1] = ARGV[term_at + 1]
    highs[term] = id
  end
  redis.call('HSET', doc_terms, ARGV[at] .. ':' .. ARGV[at + 1], table.concat(held, ' '))
  at = at + 3 + 2 * count
end
for term, block in pairs(blocks) do blocks[term] = table.concat(block) end
insert_postings(blocks, highs)
flush_postings()
for i = at, #ARGV, 2 do redis.call('HSETNX', vocab, ARGV[i], ARGV[i + 1]) end
expire_keys(tonumber(ARGV[1]))
return 1
