-- Never returns to the event loop.
tab.on_message(function() end)
while true do end
