-- Three timers set out of order fire in due order.
local order = {}
tab.set_timeout(40, function() order[#order + 1] = "c" end)
tab.set_timeout(10, function() order[#order + 1] = "a" end)
tab.set_timeout(20, function() order[#order + 1] = "b" end)
tab.set_timeout(80, function() tab.post("broker", {order = table.concat(order)}) end)
