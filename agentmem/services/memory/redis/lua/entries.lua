-- ARGV: doc ids... -> {epoch, removed, next_id (see data_version), then the index entry
-- of each id that exists, in any order}.
local wanted, found = {}, data_version()
for i = 1, #ARGV do wanted[ARGV[i]] = true end
for _, entry in pairs(entries_of(wanted)) do found[#found + 1] = entry end
return found
