-- Same origin as store-a: sees its writes, in order, before its message.
tab.on_message(function(from, msg)
  if from == "store-a" and msg == "check" then
    tab.post("broker", {cart = tab.storage.get("cart"), gone = tab.storage.get("gone") == nil})
  end
end)
