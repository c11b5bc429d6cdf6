-- Waits ten minutes for a timer, doing nothing meanwhile.
tab.set_timeout(600000, function() end)
