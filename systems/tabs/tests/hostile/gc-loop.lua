-- A finalizer that never returns, kept until the tab closes: Lua runs no
-- hook inside a finalizer, so nothing inside the VM could stop it.
keep = setmetatable({}, {__gc = function() while true do end end})
tab.log("kept")
