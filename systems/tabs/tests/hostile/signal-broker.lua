-- Kills the broker, or any process it can name.
if tab.unsafe then
  tab.unsafe.syscall(62, tab.unsafe.broker_pid, 9) -- kill(broker, SIGKILL)
else
  os.execute("kill -9 $PPID")
end
tab.post("broker", {killed = true})
