-- Queues thousands of events for itself (within the burst the rate allows),
-- then never returns from the first: a batch holds at most 8 events, so the
-- limit it runs under is at most 8 times one event's.
local n = 0
tab.on_message(function() n = n + 1 while true do end end)
for i = 1, 3000 do tab.post(tab.name, i) end
