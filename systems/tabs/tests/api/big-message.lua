-- A message past 64 KiB is refused at tab.post.
tab.post("broker", string.rep("x", 70000))
