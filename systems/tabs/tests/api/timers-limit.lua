-- At most 256 pending timers.
for i = 1, 257 do tab.set_timeout(60000, function() end) end
