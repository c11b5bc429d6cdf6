-- Busy while store-fresh changes its origin's storage; then, once the
-- last change has reached it, checks its copy against what store-fresh
-- left: the kept keys, and no fresh one.
local n = 0
for i = 1, 250000000 do n = n + i % 7 end
local function look()
  if tab.storage.get("done") ~= "yes" then
    tab.set_timeout(20, look)
    return
  end
  local kept, stale = 0, 0
  for i = 1, 1200 do
    if tab.storage.get("fresh" .. i) ~= nil then stale = stale + 1 end
    if i % 100 == 0 and tab.storage.get("kept" .. i) == tostring(i) then kept = kept + 1 end
  end
  tab.post("broker", {kept = kept, stale = stale})
end
look()
