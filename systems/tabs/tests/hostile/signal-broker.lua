-- Kills the broker, or any process it can name.
local r, err
if tab.unsafe then
  r, err = tab.unsafe.syscall(62, tab.unsafe.broker_pid, 9) -- kill(broker, SIGKILL)
else
  r = os.execute("kill -9 $PPID")
end
tab.post("broker", {kill = r, errno = err})
