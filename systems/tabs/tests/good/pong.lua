-- Answers ping with the sequence number it was sent.
local served = 0
tab.on_message(function(from, msg)
  served = served + 1
  tab.post(from, {seq = msg.seq})
  if served == 10 then tab.post("broker", {served = served}) end
end)
