-- Changes one key of its origin 3,600 times, 60 KB a change, 16 changes an
-- event (an event's output holds 1 MiB), while store-reader is too busy to
-- take them: the broker must not queue them all for it.
local value = string.rep("x", 60000)
local done = 0
local function burst()
  for _ = 1, 16 do
    done = done + 1
    tab.storage.set("k", value .. string.format("%04d", done))
  end
  if done < 3600 then
    tab.set_timeout(0, burst)
  else
    tab.post("broker", {written = done})
  end
end
burst()
