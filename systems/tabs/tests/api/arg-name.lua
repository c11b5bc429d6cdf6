-- An argument error names the function even when called without a name.
local ok, err = pcall(tab.set_timeout, "soon")
error(err, 0)
