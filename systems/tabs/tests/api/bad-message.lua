-- Only strings, numbers, booleans and plain tables travel.
tab.post("broker", {callback = function() end})
