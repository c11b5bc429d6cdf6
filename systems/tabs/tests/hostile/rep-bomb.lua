-- One call asks for a gigabyte.
local s = string.rep("x", 1 << 30)
tab.post("broker", {len = #s})
