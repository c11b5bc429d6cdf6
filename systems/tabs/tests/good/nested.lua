-- A nested table survives the trip through the broker unchanged.
local sent = {list = {1, 2, 3}, map = {a = "x", b = true}, pi = 3.5, deep = {{{"bottom"}}}}
tab.on_message(function(from, got)
  local same = got.list[3] == 3 and #got.list == 3 and got.map.a == "x" and got.map.b == true
    and got.pi == 3.5 and got.deep[1][1][1] == "bottom"
  tab.post("broker", {same = same})
end)
tab.post(tab.name, sent)
