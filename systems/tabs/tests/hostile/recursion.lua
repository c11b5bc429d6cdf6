-- Recursion without end, in Lua and through C (gsub calling back into Lua).
local function deep(n) return deep(n + 1) + 1 end
local ok, err = pcall(function()
  local function viac(s) return (s:gsub(".", viac)) end
  viac("x")
end)
tab.log("through C:", err)
deep(1)
