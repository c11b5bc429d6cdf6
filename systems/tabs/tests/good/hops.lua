-- Messages to itself, five hops through the broker.
tab.on_message(function(from, msg)
  if from ~= tab.name then return end
  if msg < 5 then tab.post(tab.name, msg + 1) else tab.post("broker", {hops = msg}) end
end)
tab.post(tab.name, 1)
