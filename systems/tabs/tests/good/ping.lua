-- Ten round trips with pong, then the count to the broker.
local n = 0
tab.on_message(function(from, msg)
  if from ~= "pong" or msg.seq ~= n then return end
  n = n + 1
  if n < 10 then tab.post("pong", {seq = n}) else tab.post("broker", {round_trips = n}) end
end)
tab.post("pong", {seq = 0})
