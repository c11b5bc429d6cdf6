-- Storage takes values up to 64 KiB, and 1 MiB per origin.
local ok, err = pcall(tab.storage.set, "big", string.rep("x", 70000))
assert(not ok and err:find("65536"), err)
for i = 1, 20 do tab.storage.set("k" .. i, string.rep("y", 60000)) end
