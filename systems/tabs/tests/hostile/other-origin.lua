-- Reads another origin's storage (store-a's "shop" keys), by every name it can
-- think of, after store-a has written; past the Lua wall, the broker's memory.
tab.storage.set("cart", "mine")
tab.set_timeout(200, function()
  local seen = {}
  if tab.unsafe then
    -- process_vm_readv(broker, local iov, 1, remote iov, 1, 0) with a bogus iov
    local r, err = tab.unsafe.syscall(310, tab.unsafe.broker_pid, 0, 0, 0, 0, 0)
    seen[1] = "process_vm_readv=" .. r .. "/" .. err
  end
  for _, k in ipairs({"cart", "shop:cart", "shop/cart", "../shop/cart", "gone"}) do
    seen[#seen + 1] = k .. "=" .. tostring(tab.storage.get(k))
  end
  tab.post("broker", {seen = table.concat(seen, " ")})
end)
