-- A message to a tab that does not exist is dropped and counted.
tab.post("nobody", "hello?")
tab.post("broker", {posted = true})
