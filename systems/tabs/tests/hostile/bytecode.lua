-- Malformed bytecode: a field read whose key constant is made an integer, so
-- the VM takes 0x4141414141414141 for a string pointer. Binary chunks load
-- only under --unsafe-lua; there it crashes the interpreter.
local function f() local t = {} return t.walls_key end
local code = string.dump(f, true)
local s, e = code:find("\x04\x8awalls_key", 1, true)
assert(s, "constant not found")
local forged = code:sub(1, s - 1) .. "\x03" .. string.rep("A", 8) .. code:sub(e + 1)
local g = assert(load(forged, "forged", "b"))
tab.post("broker", {survived = g()})
