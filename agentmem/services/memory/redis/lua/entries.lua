-- ARGV: doc ids... -> the index entry of each that exists, in any order.
local wanted, found = {}, {}
for i = 1, #ARGV do wanted[ARGV[i]] = true end
for _, entry in pairs(entries_of(wanted)) do found[#found + 1] = entry end
return found
