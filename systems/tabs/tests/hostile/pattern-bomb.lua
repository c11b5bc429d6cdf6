-- One C call that never ends: nested lazy matches over 100,000 bytes. The
-- Lua VM never regains control, so nothing inside it can stop this.
local s = string.rep("a", 100000)
tab.post("broker", {found = s:find(".-.-.-.-.-b") ~= nil})
