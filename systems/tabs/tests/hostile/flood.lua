-- Floods the broker: 500 messages every millisecond.
local function burst()
  for i = 1, 500 do tab.post("broker", i) end
  tab.set_timeout(1, burst)
end
burst()
