-- Busy while store-writer changes a key of their origin thousands of times;
-- then, once every change has reached it, reads the key's last value.
local n = 0
for i = 1, 40000000 do n = n + i % 7 end
local function look()
  local v = tab.storage.get("k")
  if v and v:sub(-4) == "3600" then
    tab.post("broker", {last = v:sub(-4), len = #v})
  else
    tab.set_timeout(20, look)
  end
end
look()
