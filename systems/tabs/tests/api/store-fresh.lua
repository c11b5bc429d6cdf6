-- Sets a fresh key to 60 KB and deletes it again, 1,200 times (8 keys an
-- event, under the rate limit's burst), keeping one small key in a
-- hundred, while store-behind is too busy to take the changes: past its
-- queue's bound (4 MiB) the broker must hold them back, not queue one
-- event per fresh key.
local value = string.rep("x", 60000)
local n = 0
local function burst()
  for _ = 1, 8 do
    n = n + 1
    local k = "fresh" .. n
    tab.storage.set(k, value)
    tab.storage.set(k, nil)
    if n % 100 == 0 then tab.storage.set("kept" .. n, tostring(n)) end
  end
  if n < 1200 then
    tab.set_timeout(0, burst)
  else
    tab.storage.set("done", "yes")
    tab.post("broker", {fresh = n})
  end
end
burst()
