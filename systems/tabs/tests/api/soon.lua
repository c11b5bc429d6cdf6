-- One timer, soon, then nothing: its batch is the tab's second.
tab.set_timeout(300, function() tab.log("fired") end)
