-- Origin "shop" (set on the command line): writes, then tells store-b.
tab.storage.set("cart", "3 apples")
tab.storage.set("gone", "x")
tab.storage.set("gone", nil)
tab.post("store-b", "check")
tab.post("broker", {cart = tab.storage.get("cart"), origin = tab.origin})
