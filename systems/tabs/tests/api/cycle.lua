-- A table that holds itself cannot be sent.
local t = {}
t.self = t
tab.post("broker", t)
