-- ARGV: terms... -> those without a vocabulary vector.
local found = {}
for i = 1, #ARGV do
  if redis.call('HEXISTS', vocab, ARGV[i]) == 0 then found[#found + 1] = ARGV[i] end
end
return found
